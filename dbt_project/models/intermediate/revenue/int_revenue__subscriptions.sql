-- Paid subscriptions (trials and incomplete sign-ups never start a paid relationship) as
-- of the as-of date, each assigned to its customer's spell: the merged, overlapping or
-- touching time ranges [started_at, ended_at) of one customer's subscriptions.
with

subscriptions as (
    select * from {{ ref('stg_billing__subscriptions') }}
),

as_of as (
    select {{ as_of_end_at() }} as as_of_end_at
),

paid as (
    select
        subscriptions.subscription_id,
        subscriptions.customer_id,
        subscriptions.subscription_status,
        subscriptions.started_at,
        -- an end after the as-of date has not happened yet
        case
            when subscriptions.ended_at < as_of.as_of_end_at then subscriptions.ended_at
        end as ended_at,
        subscriptions.canceled_at,
        subscriptions.cancel_at,
        subscriptions.is_cancel_at_period_end,
        subscriptions.cancellation_reason,
        subscriptions.cancellation_feedback,
        subscriptions.cancellation_comment
    from subscriptions
    cross join as_of
    where
        subscriptions.subscription_status not in ('trialing', 'incomplete', 'incomplete_expired')
        and subscriptions.started_at < as_of.as_of_end_at
        and (subscriptions.ended_at is null or subscriptions.ended_at > subscriptions.started_at)
),

ordered as (
    select
        *,
        max(coalesce(ended_at, 'infinity'::timestamptz)) over (
            partition by customer_id
            order by started_at, subscription_id
            rows between unbounded preceding and 1 preceding
        ) as previous_max_ended_at
    from paid
),

flagged as (
    select
        *,
        case
            when previous_max_ended_at is null or started_at > previous_max_ended_at then 1
            else 0
        end as starts_spell
    from ordered
),

final as (
    select
        subscription_id,
        customer_id,
        sum(starts_spell) over (
            partition by customer_id
            order by started_at, subscription_id
            rows between unbounded preceding and current row
        )::int as spell_number,
        subscription_status,
        started_at,
        ended_at,
        canceled_at,
        cancel_at,
        is_cancel_at_period_end,
        cancellation_reason,
        cancellation_feedback,
        cancellation_comment
    from flagged
)

select * from final
