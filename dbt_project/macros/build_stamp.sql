{#- When dbt wrote a row: the invocation's start time, shared by every row one build
    writes (the `built_at` column of the incremental models). -#}
{% macro build_stamp() -%}
    '{{ run_started_at.isoformat() }}'::timestamptz
{%- endmacro %}
