-- One row per customer and month from the customer's first paying month through the
-- as-of month, months without revenue included (mrr = 0).
with

months as (
    select * from {{ ref('int_revenue__months') }}
),

customer_mrr as (
    select * from {{ ref('int_revenue__customer_mrr_monthly') }}
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

-- every month from the customer's first paying month on
grid as (
    select
        first_paying.customer_id,
        first_paying.first_paying_month,
        months.month,
        months.snapshot_at
    from first_paying
    inner join months
        on first_paying.first_paying_month <= months.month
),

year_earlier_mrr as (
    select
        customer_id,
        (month + interval '12 months')::date as month_a_year_later,
        mrr
    from customer_mrr
    where month <= (date_trunc('month', {{ as_of_date() }}) - interval '12 months')::date
),

final as (
    select
        grid.customer_id::text as customer_id,
        customers.crm_account_id::text as crm_account_id,
        grid.month::date as month,  -- noqa: RF04
        grid.snapshot_at::timestamptz as snapshot_at,
        coalesce(customer_mrr.mrr, 0)::bigint as mrr,
        coalesce(customer_mrr.subscription_count, 0)::int as subscription_count,
        (coalesce(customer_mrr.mrr, 0) > 0)::boolean as is_active,
        (grid.month = grid.first_paying_month)::boolean as is_first_paying_month,
        grid.first_paying_month::date as cohort_month,
        -- 0 before the first paying month: the customer was not paying then
        coalesce(year_earlier_mrr.mrr, 0)::bigint as mrr_12_months_earlier
    from grid
    left join customer_mrr
        on
            grid.customer_id = customer_mrr.customer_id
            and grid.month = customer_mrr.month
    left join year_earlier_mrr
        on
            grid.customer_id = year_earlier_mrr.customer_id
            and grid.month = year_earlier_mrr.month_a_year_later
    left join customers
        on grid.customer_id = customers.customer_id
)

select * from final
