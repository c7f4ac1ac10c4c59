{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['built_at']}]
) }}

{#- The previous build (its watermark, as-of date and settings), looked up once when the
    model runs and written into the SQL as literals: with a watermark the planner knows,
    each staging table's rows loaded since are found through its loaded_at index instead
    of by reading the whole table. From scratch, or with no previous build, there is no
    row, nothing is newer than 'infinity', and '*' is logged instead. -#}
{%- set previous = none -%}
{%- if execute and is_incremental() -%}
    {%- set found = run_query(
        'select loaded_through::text, as_of_date::text, revenue_settings from ' ~ this
        ~ ' where built_at = (select max(built_at) from ' ~ this ~ ')'
        ~ ' order by loaded_through desc limit 1'
    ).rows -%}
    {%- if found and found[0][0] -%}{%- set previous = found[0] -%}{%- endif -%}
{%- endif -%}
{%- set since = ("'" ~ previous[0] ~ "'") if previous else "'infinity'" %}

-- Append-only log of the billing customers whose revenue may have changed, one set per
-- build: customers with a billing row that changed since the previous build, and
-- customers with a subscription starting or ending between the previous build's as-of
-- date and this one's (an end that was in the future has now happened). customer_id '*'
-- stands for every customer: the first build, a day of data loaded again (versions may
-- have gone), an as-of date earlier than the previous build's, or other settings of the
-- revenue models (vars, reporting currency, any change to the FX seed). The customer-
-- incremental revenue models recompute the customers logged after their own last build.
with

audit as (
    select * from {{ ref('stg_raw_meta__load_audit') }}
    where load_status = 'loaded'
),

customers as (
    select
        customer_id,
        loaded_at
    from {{ ref('stg_billing__customers') }}
),

subscriptions as not materialized (
    select
        subscription_id,
        customer_id,
        started_at,
        ended_at,
        cancel_at,
        loaded_at
    from {{ ref('stg_billing__subscriptions') }}
),

subscription_items as (
    select
        subscription_id,
        loaded_at
    from {{ ref('stg_billing__subscription_items') }}
),

invoices as not materialized (
    select
        invoice_id,
        customer_id,
        loaded_at
    from {{ ref('stg_billing__invoices') }}
),

invoice_lines as (
    select
        invoice_id,
        loaded_at
    from {{ ref('stg_billing__invoice_lines') }}
),

charges as (
    select
        customer_id,
        invoice_id,
        loaded_at
    from {{ ref('stg_billing__charges') }}
),

previous_build as (
    {% if previous %}
        select
            {{ since }}::timestamptz as loaded_through,
            {{ ("'" ~ previous[1] ~ "'::date") if previous[1] else "null::date" }} as as_of_date,
            {{ ("'" ~ (previous[2] | replace("'", "''")) ~ "'::text") if previous[2] is not none
               else "null::text" }} as revenue_settings
    {% else %}
        select
            null::timestamptz as loaded_through,
            null::date as as_of_date,
            null::text as revenue_settings
        where false
    {% endif %}
),

this_build as (
    select
        (select max(audit.loaded_at) from audit) as loaded_through,
        {{ as_of_date() }} as as_of_date,
        -- the settings the revenue models read: the vars, the reporting currency and a
        -- digest of the FX seed; any change (one rate edited or added) recomputes every
        -- customer, so no converted amount is left at an old rate
        'dunning_window_days={{ var("dunning_window_days") }};'
        || 'winback_window_days={{ var("winback_window_days") }};'
        || 'reporting_currency={{ reporting_currency() }};'
        || 'fx_rates_monthly=' || (
            select
                md5(coalesce(string_agg(
                    fx.month::text || ' ' || fx.currency || ' ' || fx.rate_to_base::text, ','
                    order by fx.month, fx.currency
                ), ''))
            from {{ ref('fx_rates_monthly') }} as fx
        ) as revenue_settings
),

bounds as (
    select
        this_build.loaded_through,
        this_build.as_of_date,
        this_build.revenue_settings,
        -- the instants whose status can differ between the two as-of dates, a day wider
        -- on each side than strictly needed
        ((previous_build.as_of_date)::timestamp at time zone 'utc') as window_start_at,
        ((this_build.as_of_date + 2)::timestamp at time zone 'utc') as window_end_at,
        (
            previous_build.loaded_through is null
            or this_build.as_of_date < previous_build.as_of_date
            or this_build.revenue_settings is distinct from previous_build.revenue_settings
            or exists (
                select 1
                from audit
                where
                    audit.rows_replaced > 0
                    and audit.loaded_at > previous_build.loaded_through
            )
        ) as rebuilds_all
    from this_build
    left join previous_build on true
),

changed as (
    select customers.customer_id
    from customers
    where customers.loaded_at > {{ since }}::timestamptz
    union
    select subscriptions.customer_id
    from subscriptions
    where subscriptions.loaded_at > {{ since }}::timestamptz
    union
    select subscriptions.customer_id
    from subscription_items
    inner join subscriptions
        on subscription_items.subscription_id = subscriptions.subscription_id
    where subscription_items.loaded_at > {{ since }}::timestamptz
    union
    select invoices.customer_id
    from invoices
    where invoices.loaded_at > {{ since }}::timestamptz
    union
    select invoices.customer_id
    from invoice_lines
    inner join invoices
        on invoice_lines.invoice_id = invoices.invoice_id
    where invoice_lines.loaded_at > {{ since }}::timestamptz
    union
    select coalesce(invoices.customer_id, charges.customer_id) as customer_id
    from charges
    left join invoices
        on charges.invoice_id = invoices.invoice_id
    where charges.loaded_at > {{ since }}::timestamptz
    union
    select subscriptions.customer_id
    from subscriptions
    inner join bounds
        on
            subscriptions.started_at >= bounds.window_start_at
            and subscriptions.started_at < bounds.window_end_at
            or subscriptions.ended_at >= bounds.window_start_at
            and subscriptions.ended_at < bounds.window_end_at
            or subscriptions.cancel_at >= bounds.window_start_at
            and subscriptions.cancel_at < bounds.window_end_at
),

logged as (
    select '*' as customer_id
    from bounds
    where bounds.rebuilds_all
    union all
    select changed.customer_id
    from changed
    cross join bounds
    where not bounds.rebuilds_all and changed.customer_id is not null
    union all
    -- every build records its watermark, as-of date and settings, even one that found no
    -- change
    select null as customer_id
),

final as (
    select
        logged.customer_id::text as customer_id,
        bounds.loaded_through::timestamptz as loaded_through,
        bounds.as_of_date::date as as_of_date,
        bounds.revenue_settings::text as revenue_settings,
        {{ build_stamp() }} as built_at
    from logged
    cross join bounds
)

select * from final
