-- depends_on: {{ ref('int_revenue__changed_customers') }}
{{ customer_incremental_config(['customer_id', 'month'], 'month') }}

-- One row per customer and month from the customer's first paying month through the
-- as-of month, months without revenue included (mrr = 0).
with

months as not materialized (
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
        {{ is_recomputed('customer_mrr.customer_id', 'customer_mrr.month', indexed=true) }}
),

-- two branches, each read through one index: every month of the customers logged as
-- changed, and the months a year before the recomputed ones of everyone else (from
-- scratch, the second is empty)
year_earlier_candidates as not materialized (
    select
        customer_mrr.customer_id,
        customer_mrr.month,
        customer_mrr.mrr
    from customer_mrr
    where {{ is_recomputed('customer_mrr.customer_id', indexed=true) }}
    union all
    select
        customer_mrr.customer_id,
        customer_mrr.month,
        customer_mrr.mrr
    from customer_mrr
    where
        not {{ is_recomputed('customer_mrr.customer_id') }}
        and {{ month_is_recomputed('customer_mrr.month', months_later=12) }}
),

year_earlier_mrr as not materialized (
    select
        customer_id,
        (month + interval '12 months')::date as month_a_year_later,
        mrr
    from year_earlier_candidates
    where month <= (date_trunc('month', {{ as_of_date() }}) - interval '12 months')::date
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

recomputed_months as (
    select * from months
    where {{ month_is_recomputed('months.month') }}
),

earlier_months as (
    select * from months
    where not {{ month_is_recomputed('months.month') }}
),

-- the recomputed months of every customer, and the earlier months of the customers
-- logged as changed: two branches, so that neither pairs every customer with every
-- month (from scratch, the second is empty)
grid as (
    select
        first_paying.customer_id,
        first_paying.first_paying_month,
        recomputed_months.month,
        recomputed_months.snapshot_at
    from first_paying
    inner join recomputed_months
        on first_paying.first_paying_month <= recomputed_months.month
    union all
    select
        first_paying.customer_id,
        first_paying.first_paying_month,
        earlier_months.month,
        earlier_months.snapshot_at
    from first_paying
    inner join earlier_months
        on first_paying.first_paying_month <= earlier_months.month
    where {{ is_recomputed('first_paying.customer_id') }}
),

final as (
    select
        grid.customer_id::text as customer_id,
        customers.crm_account_id::text as crm_account_id,
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
