-- One row per customer and paid spell: an unbroken stretch with at least one paid
-- subscription running. A spell that ended by the as-of date is a defection.
with

subscriptions as (
    select * from {{ ref('int_revenue__subscriptions') }}
),

spells as (
    select
        customer_id,
        spell_number,
        min(started_at) as spell_started_at,
        -- null while any subscription of the spell is still running
        case when bool_and(ended_at is not null) then max(ended_at) end as spell_ended_at,
        count(*)::int as subscription_count
    from subscriptions
    group by customer_id, spell_number
),

final as (
    select
        customer_id,
        spell_number,
        spell_started_at,
        spell_ended_at,
        subscription_count,
        lead(spell_started_at) over (
            partition by customer_id order by spell_number
        ) as next_spell_started_at
    from spells
)

select * from final
