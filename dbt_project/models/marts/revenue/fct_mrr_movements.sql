-- depends_on: {{ ref('int_revenue__changed_customers') }}
{{ customer_incremental_config(['customer_id', 'month'], 'month') }}

-- One row per customer and month in which the customer's MRR changed (or started).
-- Movements are computed on the customer's total, after rolling subscriptions up, so
-- cancelling one of two subscriptions is a contraction, not a churn.
with

monthly as not materialized (
    select * from {{ ref('fct_customer_mrr_monthly') }}
),

-- the months this build recomputes, and the month before each (its previous MRR): every
-- month of the customers logged as changed (found by the customer_id index), and the
-- newest months of everyone else (from scratch, the second part is empty)
scoped as (
    select *
    from monthly
    where {{ is_recomputed('monthly.customer_id', indexed=true) }}
    union all
    select *
    from monthly
    where
        not {{ is_recomputed('monthly.customer_id') }}
        and {{ month_is_recomputed('monthly.month', months_later=1) }}
),

with_history as (
    select
        scoped.customer_id,
        scoped.crm_account_id,
        scoped.month,
        scoped.mrr,
        scoped.is_first_paying_month,
        coalesce(lag(scoped.mrr) over customer_months, 0) as previous_mrr
    from scoped
    window customer_months as (partition by scoped.customer_id order by scoped.month)
),

categorised as (
    select
        *,
        case
            when is_first_paying_month then 'new'
            -- a customer's monthly grid starts at its first paying month, so every later
            -- month has paid before: paying again after a month at 0
            when mrr > 0 and previous_mrr = 0 then 'reactivation'
            when mrr = 0 and previous_mrr > 0 then 'churn'
            when mrr > previous_mrr then 'expansion'
            when mrr < previous_mrr then 'contraction'
        end as movement_category
    from with_history
),

final as (
    select
        customer_id::text as customer_id,
        crm_account_id::text as crm_account_id,
        month::date as month,  -- noqa: RF04
        movement_category::text as movement_category,
        previous_mrr::bigint as previous_mrr,
        mrr::bigint as current_mrr,
        (mrr - previous_mrr)::bigint as mrr_delta,
        {{ build_stamp() }} as built_at
    from categorised
    where
        movement_category is not null
        and {{ is_recomputed('customer_id', 'month') }}
)

select * from final
