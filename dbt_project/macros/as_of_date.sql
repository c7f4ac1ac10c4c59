{#-
    The date the marts describe: var('as_of_date') when given (backfills, tests), else
    the newest day loaded (billing subscriptions are landed in full every night). "Now"
    never comes from the wall clock, so a rebuild of the same data gives the same numbers.
-#}
{% macro as_of_date() %}
    {%- if var('as_of_date', none) -%}
        cast('{{ var("as_of_date") }}' as date)
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
