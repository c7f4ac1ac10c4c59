{#-
    The date the marts describe, in this order:
      1. var('as_of_date'), when given on the command line (ad-hoc runs);
      2. the DW_AS_OF_DATE environment variable, which the project's runner sets for
         nightly builds, backfills and tests;
      3. else the newest day loaded (billing subscriptions are landed in full every night).
    "Now" never comes from the wall clock, so a rebuild of the same data gives the same
    numbers. The environment variable is read only when a model executes, never while
    dbt parses the project: a new date each night then leaves dbt's saved parse valid,
    where a new --vars value makes dbt parse the whole project again (seconds per run).
-#}
{% macro as_of_date() %}
    {%- set requested = var('as_of_date', none) -%}
    {%- if not requested and execute -%}
        {%- set requested = env_var('DW_AS_OF_DATE', '') -%}
    {%- endif -%}
    {%- if requested -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', requested | string) -%}
            {{ exceptions.raise_compiler_error(
                "as-of date must be YYYY-MM-DD, got " ~ (requested | string)) }}
        {%- endif -%}
        cast('{{ requested }}' as date)
    {%- else -%}
        (
            select max(logical_date) from {{ ref('stg_raw_meta__load_audit') }}
            where
                source_name = 'billing'
                and entity = 'subscriptions'
                and load_status = 'loaded'
        )
    {%- endif -%}
{% endmacro %}
