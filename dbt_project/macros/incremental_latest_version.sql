{#-
    Incremental staging of a large source: the newest version of each key, reading on a
    nightly build only the raw rows loaded since the table's newest row, and writing them
    with dbt's delete+insert on the key.

    The watermark is the table's max(loaded_at), looked up when the model compiles so the
    planner sees a literal and finds the night's rows through the raw table's BRIN index
    on _loaded_at (a subquery would leave it guessing a third of the table). No lookback is
    needed: _loaded_at is the time of the load's transaction, and a night's loads commit
    before its build starts.

    This is right as long as every batch loaded since the last build is for a later day
    than the ones before and replaced nothing. A night that breaks that (a rerun, a
    backfill or a late delivery) is built with --full-refresh: see
    defection_warehouse/dbt_builds.py, which nightly_build() consults.
-#}
{% macro incremental_latest_version(relation, key_columns, order_by) %}
    {%- set where = none %}
    {%- if is_incremental() and execute %}
        {%- set held = run_query('select max(loaded_at)::text from ' ~ this).columns[0][0] %}
        {%- set where = "_loaded_at > '" ~ (held or '-infinity') ~ "'::timestamptz" %}
    {%- endif %}
    {{ latest_version(relation, key_columns, order_by, where=where) }}
{% endmacro %}


{#- The configuration the incremental staging tables share: delete+insert on the key,
    whose unique index makes the delete fast and keeps any key from being written twice;
    an index on loaded_at for the watermark. extra_indexes: lookups of the models
    downstream. -#}
{% macro incremental_staging_config(key_columns, extra_indexes=[]) %}
    {{ config(
        materialized='incremental',
        unique_key=key_columns,
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': key_columns, 'unique': True}, {'columns': ['loaded_at']}]
            + extra_indexes
    ) }}
{% endmacro %}
