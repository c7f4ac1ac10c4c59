-- One row per defection: the end of a customer's paid spell on or before the as-of date.
-- The defection date is the day the last paid subscription ended (the period end for a
-- cancel-at-period-end), not the day cancel was pressed; both are kept.
with

spells as (
    select * from {{ ref('int_revenue__spells') }}
),

subscriptions as (
    select * from {{ ref('int_revenue__subscriptions') }}
),

customers as (
    select
        customer_id,
        crm_account_id
    from {{ ref('stg_billing__customers') }}
),

line_mrr as (
    select * from {{ ref('int_revenue__invoice_line_mrr') }}
),

invoices as (
    select
        invoice_id,
        subscription_id,
        invoice_status
    from {{ ref('stg_billing__invoices') }}
),

charges as (
    select
        invoice_id,
        charge_status,
        created_at
    from {{ ref('stg_billing__charges') }}
),

ended_spells as (
    select
        customer_id,
        spell_number,
        spell_started_at,
        spell_ended_at as defected_at,
        (spell_ended_at at time zone 'utc')::date as defection_date,
        next_spell_started_at
    from spells
    where spell_ended_at is not null
),

-- first failed charge of every invoice that was never paid
unpaid_failures as (
    select
        invoices.subscription_id,
        min(charges.created_at) as first_failed_at
    from invoices
    inner join charges
        on invoices.invoice_id = charges.invoice_id
    where
        invoices.invoice_status in ('open', 'uncollectible')
        and charges.charge_status = 'failed'
    group by invoices.invoice_id, invoices.subscription_id
),

-- involuntary: billing cancelled it for non-payment, or it ended while a failed invoice
-- was still unpaid and within the dunning window after the first failed attempt
subscription_ends as (
    select
        subscriptions.customer_id,
        subscriptions.spell_number,
        subscriptions.ended_at,
        subscriptions.canceled_at,
        coalesce(subscriptions.cancellation_reason = 'payment_failed', false)
        or unpaid_failures.subscription_id is not null as is_involuntary
    from subscriptions
    left join unpaid_failures
        on
            subscriptions.subscription_id = unpaid_failures.subscription_id
            and subscriptions.ended_at >= unpaid_failures.first_failed_at
            and subscriptions.ended_at <= unpaid_failures.first_failed_at
            + make_interval(days => {{ var('dunning_window_days') }})
    where subscriptions.ended_at is not null
),

-- the subscriptions that ended the relationship: those of the spell ending that day
ending_flags as (
    select
        ended_spells.customer_id,
        ended_spells.spell_number,
        max(coalesce(subscription_ends.canceled_at, subscription_ends.ended_at))
            as requested_cancel_at,
        bool_or(subscription_ends.is_involuntary) as is_involuntary
    from ended_spells
    inner join subscription_ends
        on
            ended_spells.customer_id = subscription_ends.customer_id
            and ended_spells.spell_number = subscription_ends.spell_number
            and (subscription_ends.ended_at at time zone 'utc')::date
            = ended_spells.defection_date
    group by ended_spells.customer_id, ended_spells.spell_number
),

-- MRR running just before the end: lines of the ending subscriptions covering that instant
lost as (
    select
        ended_spells.customer_id,
        ended_spells.spell_number,
        {{ mrr_from_annualised('line_mrr.annualised_amount') }} as lost_mrr
    from ended_spells
    inner join line_mrr
        on
            ended_spells.customer_id = line_mrr.customer_id
            and ended_spells.defected_at > line_mrr.period_start_at
            and ended_spells.defected_at <= line_mrr.period_end_at
            and ended_spells.defected_at <= line_mrr.subscription_ended_at
    group by ended_spells.customer_id, ended_spells.spell_number
),

final as (
    select
        md5(ended_spells.customer_id || '|' || to_char(ended_spells.defection_date, 'YYYY-MM-DD'))
            as defection_id,
        ended_spells.customer_id,
        customers.crm_account_id,
        ended_spells.spell_started_at,
        ending_flags.requested_cancel_at,
        ended_spells.defected_at,
        ended_spells.defection_date,
        date_trunc('month', ended_spells.defection_date)::date as defection_month,
        coalesce(ending_flags.is_involuntary, false) as is_involuntary,
        coalesce(lost.lost_mrr, 0)::bigint as lost_mrr,
        (ended_spells.defection_date - (ended_spells.spell_started_at at time zone 'utc')::date)
        ::int as tenure_days,
        case
            when
                ended_spells.next_spell_started_at <= ended_spells.defected_at
                + make_interval(days => {{ var('winback_window_days') }})
                then ended_spells.next_spell_started_at
        end as won_back_at,
        coalesce(
            ended_spells.next_spell_started_at <= ended_spells.defected_at
            + make_interval(days => {{ var('winback_window_days') }}),
            false
        ) as is_won_back
    from ended_spells
    left join customers
        on ended_spells.customer_id = customers.customer_id
    left join ending_flags
        on
            ended_spells.customer_id = ending_flags.customer_id
            and ended_spells.spell_number = ending_flags.spell_number
    left join lost
        on
            ended_spells.customer_id = lost.customer_id
            and ended_spells.spell_number = lost.spell_number
)

select * from final
