{#-
    Customer-incremental models: a night recomputes only the billing customers logged in
    int_revenue__changed_customers after the model's own last build (built_at), and, for
    monthly models, every customer's months whose snapshot was not final at the previous
    build's as-of date (see is_recomputed). The rows of those
    customers and months are deleted and inserted again in one transaction. A '*' in the
    log, an empty table or `--full-refresh` recompute everything.

    Usage in a model:
        -- depends_on: {{ ref('int_revenue__changed_customers') }}
        {{ customer_incremental_config(['subscription_id']) }}
        ... where {{ is_recomputed('subscriptions.customer_id') }}
-#}
{% macro customer_incremental_config(unique_key, month_column=none) %}
    {{ config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': unique_key, 'unique': True}, {'columns': ['built_at']}]
            + ([] if unique_key[0] == 'customer_id' else [{'columns': ['customer_id']}])
            + ([{'columns': [month_column]}] if month_column else []),
        pre_hook="{{ delete_recomputed_rows(" ~ (("'" ~ month_column ~ "'") if month_column else "none")
            ~ ") }}"
    ) }}
{% endmacro %}


{#- The model's last build, the as-of date of that build and whether this build must
    recompute everything, looked up when the model runs and written into its SQL as
    literals: with values the planner knows, the rows of the logged customers are found
    through the customer_id indexes instead of by reading whole tables. The model's SQL
    is compiled just before its pre-hook deletes, and nothing either reads changes in
    between, so the delete and the insert agree. none when the model is built from
    scratch. -#}
{% macro customer_changes() %}
    {%- if not (execute and is_incremental()) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
    with
    last_build as (
        select max(built_at) as built_at from {{ this }}
    ),
    since as (
        select
            last_build.built_at,
            (
                select max(log.as_of_date)
                from {{ ref('int_revenue__changed_customers') }} as log
                where log.built_at = last_build.built_at
            ) as previous_as_of_date
        from last_build
    )
    select
        since.built_at::text as since_built_at,
        since.previous_as_of_date::text as previous_as_of_date,
        (
            since.built_at is null
            or since.previous_as_of_date is null
            or exists (
                select 1 from {{ ref('int_revenue__changed_customers') }} as log
                where log.customer_id = '*' and log.built_at > since.built_at
            )
        ) as rebuilds_all
    from since
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {{ return({'since_built_at': row[0], 'previous_as_of_date': row[1],
               'rebuilds_all': row[2]}) }}
{% endmacro %}


{#- SQL condition: the row (customer, and month for monthly models) is recomputed in this
    build. Always true when the model is built from scratch or recomputes everything. A
    month's snapshot is final once the as-of date has passed its last day, so the months
    from the one holding the day after the previous as-of date are recomputed.

    indexed: compare the customer with an array of the logged customers instead of a
    subquery, so that PostgreSQL can combine the customer_id and month indexes (a
    BitmapOr) where the table has both. Only for conditions that an index serves: read
    row by row, the array is searched from its start for every row. -#}
{% macro is_recomputed(customer_column, month_column=none, indexed=false) -%}
    {%- set changes = customer_changes() -%}
    {%- if changes is none or changes.rebuilds_all -%}
    true
    {%- else -%}
    {%- set logged -%}
            select log.customer_id
            from {{ ref('int_revenue__changed_customers') }} as log
            where
                log.customer_id is not null
                and log.built_at > '{{ changes.since_built_at }}'::timestamptz
    {%- endset -%}
    (
        {%- if indexed %}
        {{ customer_column }} = any(array(
            {{ logged }}
        ))
        {%- else %}
        {{ customer_column }} in (
            {{ logged }}
        )
        {%- endif %}
        {%- if month_column %}
        or {{ month_is_recomputed(month_column) }}
        {%- endif %}
    )
    {%- endif -%}
{%- endmacro %}


{#- SQL condition: every customer's row of this month is recomputed (see above).
    months_later: test the month that many months after month_column instead (a row
    that feeds a later month's row), still comparing the bare column, so that its index
    can serve the condition. -#}
{% macro month_is_recomputed(month_column, months_later=0) -%}
    {%- set changes = customer_changes() -%}
    {%- if changes is none or changes.rebuilds_all -%}
    true
    {%- else -%}
    {{ month_column }} >= (
        date_trunc('month', '{{ changes.previous_as_of_date }}'::date + 1)
        - interval '{{ months_later }} months'
    )::date
    {%- endif -%}
{%- endmacro %}


{% macro delete_recomputed_rows(month_column=none) %}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where {{ is_recomputed('customer_id', month_column, indexed=true) }}
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}
