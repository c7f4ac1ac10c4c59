-- The subscriptions that ended a relationship: those of the defecting spell that ended on
-- the defection date (an add-on cancelled months earlier is not one of them).
with

defections as (
    select
        defection_id,
        customer_id,
        spell_started_at,
        defected_at,
        defection_date
    from {{ ref('int_defections') }}
),

subscriptions as (
    select * from {{ ref('int_revenue__subscriptions') }}
),

final as (
    select
        defections.defection_id,
        subscriptions.subscription_id,
        subscriptions.ended_at,
        subscriptions.cancellation_reason,
        subscriptions.cancellation_feedback,
        subscriptions.cancellation_comment
    from defections
    inner join subscriptions
        on
            defections.customer_id = subscriptions.customer_id
            and defections.spell_started_at <= subscriptions.started_at
            and defections.defected_at >= subscriptions.started_at
            and (subscriptions.ended_at at time zone 'utc')::date = defections.defection_date
)

select * from final
