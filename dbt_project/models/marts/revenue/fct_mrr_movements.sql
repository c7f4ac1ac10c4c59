-- One row per customer and month in which the customer's MRR changed (or started).
-- Movements are computed on the customer's total, after rolling subscriptions up, so
-- cancelling one of two subscriptions is a contraction, not a churn.
with

monthly as (
    select * from {{ ref('fct_customer_mrr_monthly') }}
),

with_history as (
    select
        monthly.customer_id,
        monthly.crm_account_id,
        monthly.month,
        monthly.mrr,
        monthly.is_first_paying_month,
        coalesce(lag(monthly.mrr) over customer_months, 0) as previous_mrr
    from monthly
    window customer_months as (partition by monthly.customer_id order by monthly.month)
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
        (mrr - previous_mrr)::bigint as mrr_delta
    from categorised
    where movement_category is not null
)

select * from final
