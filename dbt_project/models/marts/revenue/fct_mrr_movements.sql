-- depends_on: {{ ref('int_revenue__changed_customers') }}
{{ customer_incremental_config(['customer_id', 'month'], 'month') }}

-- One row per customer and month in which the customer's MRR changed (or started).
-- Movements are computed on the customer's total, after rolling subscriptions up, so
-- cancelling one of two subscriptions is a contraction, not a churn.
with

monthly as (
    select * from {{ ref('fct_customer_mrr_monthly') }}
),

-- a customer has paid before a month exactly when the month is after its first paying
-- month (the monthly grid starts there)
first_paying as (
    select
        customer_id,
        month as first_paying_month
    from monthly
    where is_first_paying_month
),

-- the months this build recomputes, and the month before each (its previous MRR)
scoped as (
    select *
    from monthly
    where {{ is_recomputed('monthly.customer_id', "(monthly.month + interval '1 month')::date") }}
),

with_history as (
    select
        scoped.customer_id,
        scoped.crm_account_id,
        scoped.month,
        scoped.mrr,
        scoped.is_first_paying_month,
        coalesce(lag(scoped.mrr) over customer_months, 0) as previous_mrr,
        coalesce(scoped.month > first_paying.first_paying_month, false) as has_paid_before
    from scoped
    left join first_paying
        on scoped.customer_id = first_paying.customer_id
    window customer_months as (partition by scoped.customer_id order by scoped.month)
),

categorised as (
    select
        *,
        case
            when is_first_paying_month then 'new'
            when mrr > 0 and previous_mrr = 0 and has_paid_before then 'reactivation'
            when mrr = 0 and previous_mrr > 0 then 'churn'
            when mrr > previous_mrr then 'expansion'
            when mrr < previous_mrr then 'contraction'
        end as movement_category
    from with_history
),

final as (
    select
        customer_id::text as customer_id,
        crm_account_id::bigint as crm_account_id,
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
