-- depends_on: {{ ref('int_revenue__changed_customers') }}
{{ customer_incremental_config(['customer_id', 'month'], 'month', flags_as_of_month=true) }}

-- One row per customer and month from the customer's first paying month through the
-- as-of month, months without revenue included (mrr = 0).
with

months as (
    select * from {{ ref('int_revenue__months') }}
),

-- not materialized (it is read twice): the rows of the months a night recomputes are
-- looked up by the (customer_id, month) index instead of copying the whole table
customer_mrr as not materialized (
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

grid as (
    select
        first_paying.customer_id,
        first_paying.first_paying_month,
        months.month,
        months.snapshot_at,
        months.is_as_of_month
    from first_paying
    inner join months
        on first_paying.first_paying_month <= months.month
    where {{ is_recomputed('first_paying.customer_id', 'months.month', flags_as_of_month=true) }}
),

final as (
    select
        grid.customer_id::text as customer_id,
        customers.crm_account_id::bigint as crm_account_id,
        grid.month::date as month,  -- noqa: RF04
        grid.snapshot_at::timestamptz as snapshot_at,
        grid.is_as_of_month::boolean as is_as_of_month,
        coalesce(customer_mrr.mrr, 0)::bigint as mrr,
        coalesce(customer_mrr.subscription_count, 0)::int as subscription_count,
        (coalesce(customer_mrr.mrr, 0) > 0)::boolean as is_active,
        (grid.month = grid.first_paying_month)::boolean as is_first_paying_month,
        {{ build_stamp() }} as built_at
    from grid
    left join customer_mrr
        on
            grid.customer_id = customer_mrr.customer_id
            and grid.month = customer_mrr.month
    left join customers
        on grid.customer_id = customers.customer_id
)

select * from final
