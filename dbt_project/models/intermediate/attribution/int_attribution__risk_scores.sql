-- How strongly the signals of a customer paying now, or at a backtest date, point to a
-- defection. Grain: checkpoint of kind active or backtest with at least one observed
-- signal. The same calibrated evidence as attribution (int_attribution__evidence): each
-- signal's calibrated lift says how many times as common it is among customers who left as
-- among those who stayed; the risk lift multiplies them (adds their logarithms), as if the
-- signals were independent, so two signals that each double the odds make four.
-- A customer is flagged when the risk lift reaches at_risk_min_lift, and at most the
-- at_risk_max_share of the customers paying that day with the highest risk lift are:
-- the list stays short enough to act on.
with

checkpoints as (
    select * from {{ ref('int_attribution__checkpoints') }}
    where checkpoint_kind in ('active', 'backtest')
),

evidence as (
    select * from {{ ref('int_attribution__evidence') }}
    where
        checkpoint_kind in ('active', 'backtest')
        and evidence_type = 'observed'
),

-- the customers scored each day: the denominator of the share flagged
scored as (
    select
        checkpoint_kind,
        as_of_date,
        count(*) as paying_customers
    from checkpoints
    group by checkpoint_kind, as_of_date
),

scores as (
    select
        checkpoint_id,
        count(*) as signal_count,
        -- a signal at most as common among leavers as among stayers adds nothing
        sum(greatest(ln(coalesce(lift, 1)), 0)) as risk_log_lift
    from evidence
    group by checkpoint_id
),

ranked as (
    select
        checkpoints.checkpoint_id,
        checkpoints.checkpoint_kind,
        checkpoints.as_of_date,
        checkpoints.customer_id,
        scores.signal_count,
        scores.risk_log_lift,
        scored.paying_customers,
        row_number() over (
            partition by checkpoints.checkpoint_kind, checkpoints.as_of_date
            order by scores.risk_log_lift desc, checkpoints.mrr desc, checkpoints.customer_id asc
        ) as risk_rank
    from checkpoints
    inner join scores
        on checkpoints.checkpoint_id = scores.checkpoint_id
    inner join scored
        on
            checkpoints.checkpoint_kind = scored.checkpoint_kind
            and checkpoints.as_of_date = scored.as_of_date
),

final as (
    select
        checkpoint_id::text as checkpoint_id,
        checkpoint_kind::text as checkpoint_kind,
        as_of_date::date as as_of_date,
        customer_id::text as customer_id,
        signal_count::int as signal_count,
        round(exp(risk_log_lift)::numeric, 6) as risk_lift,
        risk_rank::int as risk_rank,
        paying_customers::int as paying_customers,
        (
            risk_log_lift >= ln({{ var('at_risk_min_lift') }})
            and risk_rank <= {{ var('at_risk_max_share') }} * paying_customers
        )::boolean as is_flagged
    from ranked
)

select * from final
