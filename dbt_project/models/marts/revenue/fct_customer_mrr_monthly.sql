-- depends_on: {{ ref('int_revenue__changed_customers') }}
{{ customer_incremental_config(['customer_id', 'month'], 'month') }}

-- One row per customer and month from the customer's first paying month through the
-- as-of month, months without revenue included (mrr = 0).
with

months as (
    select * from {{ ref('int_revenue__months') }}
),

-- not materialized (it is read three times): each use reads only the rows it needs
customer_mrr as not materialized (
    select * from {{ ref('int_revenue__customer_mrr_monthly') }}
),

-- the rows the recomputed customer-months below are joined to, each side cut down to
-- them before it is hashed (the same condition, for the month and for a year later)
recomputed_mrr as not materialized (
    select
        customer_mrr.customer_id,
        customer_mrr.month,
        customer_mrr.mrr,
        customer_mrr.subscription_count
    from customer_mrr
    where
        {{ is_recomputed('customer_mrr.customer_id', 'customer_mrr.month') }}
),

year_earlier_mrr as not materialized (
    select
        customer_mrr.customer_id,
        (customer_mrr.month + interval '12 months')::date as month_a_year_later,
        customer_mrr.mrr
    from customer_mrr
    where
        customer_mrr.month <= (date_trunc('month', {{ as_of_date() }}) - interval '12 months')::date
        and {{ is_recomputed(
            'customer_mrr.customer_id', "(customer_mrr.month + interval '12 months')::date"
        ) }}
),

customers as (
    select
        customer_id,
        crm_account_id
    from {{ ref('stg_billing__customers') }}
),

first_paying as (
    select
        customer_id,
        min(month) as first_paying_month
    from customer_mrr
    where mrr > 0
    group by customer_id
),

grid as (
    select
        first_paying.customer_id,
        first_paying.first_paying_month,
        months.month,
        months.snapshot_at
    from first_paying
    inner join months
        on first_paying.first_paying_month <= months.month
    where {{ is_recomputed('first_paying.customer_id', 'months.month') }}
),

final as (
    select
        grid.customer_id::text as customer_id,
        customers.crm_account_id::bigint as crm_account_id,
        grid.month::date as month,  -- noqa: RF04
        grid.snapshot_at::timestamptz as snapshot_at,
        coalesce(recomputed_mrr.mrr, 0)::bigint as mrr,
        coalesce(recomputed_mrr.subscription_count, 0)::int as subscription_count,
        (coalesce(recomputed_mrr.mrr, 0) > 0)::boolean as is_active,
        (grid.month = grid.first_paying_month)::boolean as is_first_paying_month,
        grid.first_paying_month::date as cohort_month,
        -- 0 before the first paying month: the customer was not paying then
        coalesce(year_earlier_mrr.mrr, 0)::bigint as mrr_12_months_earlier,
        {{ build_stamp() }} as built_at
    from grid
    left join recomputed_mrr
        on
            grid.customer_id = recomputed_mrr.customer_id
            and grid.month = recomputed_mrr.month
    left join year_earlier_mrr
        on
            grid.customer_id = year_earlier_mrr.customer_id
            and grid.month = year_earlier_mrr.month_a_year_later
    left join customers
        on grid.customer_id = customers.customer_id
)

select * from final
