{#- Post-hook of every model: a table built from scratch (a table model, or an incremental
    one on its first build or a full refresh) has no planner statistics until autovacuum
    gets to it, and the models built right after it would be planned blind: nested loops
    over "one row" that is tens of thousands. A night's incremental insert leaves the
    statistics close enough and is left to autovacuum.

    The statistics come from a sample of 300 x var('analyze_statistics_target') rows
    (PostgreSQL's default_statistics_target, for this statement only). The default of 10
    (3,000 rows instead of PostgreSQL's 30,000) gives the planner row counts and coarse
    distributions, which is what the next models' plans need; sorting 30,000 sampled
    values of every text column took about 0.1 s a table, 0.8 s of an incremental night
    at the 100,000-customer size. Autovacuum analyzes a table of more than about 55 rows
    again after the build commits (its rows count as changes then), with the server's
    own target: that is what analysts' queries on the published marts get. -#}
{% macro analyze_rebuilt_table() -%}
    {%- set materialized = config.get('materialized') -%}
    {%- if materialized == 'table'
        or (materialized == 'incremental' and not is_incremental()) -%}
    set local default_statistics_target = {{ var('analyze_statistics_target') | int }};
    analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
