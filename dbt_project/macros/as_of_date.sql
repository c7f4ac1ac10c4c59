{#-
    The date the marts describe: var('as_of_date') when given (backfills, tests), else
    the newest logical date loaded into raw. "Now" never comes from the wall clock, so a
    rebuild of the same data gives the same numbers.
-#}
{% macro as_of_date() %}
    {%- if var('as_of_date', none) -%}
        cast('{{ var("as_of_date") }}' as date)
    {%- else -%}
        (select max(_logical_date) from {{ source('billing', 'subscriptions') }})
    {%- endif -%}
{% endmacro %}
