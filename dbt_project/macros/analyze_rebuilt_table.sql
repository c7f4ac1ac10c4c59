{#- Post-hook of every model: a table built from scratch (a table model, or an incremental
    one on its first build or a full refresh) has no planner statistics until autovacuum
    gets to it, and the models built right after it would be planned blind: nested loops
    over "one row" that is tens of thousands. A night's incremental insert leaves the
    statistics close enough and is left to autovacuum. -#}
{% macro analyze_rebuilt_table() -%}
    {%- set materialized = config.get('materialized') -%}
    {%- if materialized == 'table'
        or (materialized == 'incremental' and not is_incremental()) -%}
    analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
