{#-
    Schemas by layer: a model or seed with a custom schema (staging, intermediate, seeds)
    lands in that schema as named; the marts, which have none, land in the target schema,
    the build schema that a validated run is published from.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
