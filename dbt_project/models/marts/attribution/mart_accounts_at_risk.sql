-- Paying customers showing defection signals now. Grain: customer paying in the as-of
-- month with at least one observed signal at the as-of date. The signals are the same
-- rules the attribution of past defections uses (int_attribution__evidence), weighted the
-- same way, so the top cause reads like the one a defection would get today. Customers
-- are ranked by their risk lift and the riskiest flagged (int_attribution__risk_scores);
-- kpi_at_risk_backtest shows how the same flag did 3 and 6 months ago.
-- The planner underestimates how many checkpoints carry signals (aggregated CTEs have no
-- statistics) and would re-run the account lookup per row in a nested loop: at 100,000
-- customers that took minutes instead of seconds.
{{ config(pre_hook="set local enable_nestloop = off") }}

with

checkpoints as (
    select * from {{ ref('int_attribution__checkpoints') }}
    where checkpoint_kind = 'active'
),

evidence as (
    select
        checkpoint_id,
        cause_id,
        evidence_type,
        evidence_source,
        evidence_detail,
        strength,
        observed_at
    from {{ ref('int_attribution__evidence') }}
    where checkpoint_kind = 'active'
),

taxonomy as (
    select * from {{ ref('cause_taxonomy') }}
),

risk as (
    select * from {{ ref('int_attribution__risk_scores') }}
    where checkpoint_kind = 'active'
),

accounts as (
    select
        account_id,
        account_name,
        segment,
        owner_name
    from {{ ref('stg_crm__accounts') }}
),

weighted as (
    {{ attribution_cause_weights('evidence', 'checkpoint_id', 'taxonomy') }}
),

signals as (
    select
        checkpoint_id,
        array_agg(evidence_source order by strength desc, evidence_source asc)::text[] as signals,
        array_agg(
            evidence_source || ': ' || evidence_detail
            order by strength desc, evidence_source asc
        )::text[] as evidence,
        count(*) as signal_count,
        min(observed_at) as first_signal_at
    from evidence
    group by checkpoint_id
),

-- One aggregate per checkpoint (rather than joining the weighted rows twice): the
-- planner misjudges the size of filtered CTEs and picks nested loops at scale.
causes as (
    select
        checkpoint_id,
        array_agg(cause_id order by cause_rank)::text[] as causes,
        (array_agg(cause_id order by cause_rank))[1] as top_cause,
        max(weight) filter (where cause_rank = 1) as top_cause_weight
    from weighted
    group by checkpoint_id
),

final as (
    select
        checkpoints.customer_id::text as customer_id,
        checkpoints.crm_account_id::text as crm_account_id,
        accounts.account_name::text as account_name,
        accounts.segment::text as segment,
        accounts.owner_name::text as owner,  -- noqa: RF04
        checkpoints.as_of_date::date as as_of_date,
        checkpoints.mrr::bigint as mrr_at_risk,
        risk.risk_lift::numeric(18, 6) as risk_lift,
        risk.risk_rank::int as risk_rank,
        risk.is_flagged::boolean as is_flagged,
        signals.signal_count::int as signal_count,
        signals.signals::text[] as signals,
        signals.evidence::text[] as evidence,
        causes.causes::text[] as causes,
        causes.top_cause::text as top_cause,
        causes.top_cause_weight::numeric(9, 6) as top_cause_weight,
        taxonomy.owning_function::text as owning_function,
        taxonomy.recommended_fix::text as recommended_fix,
        signals.first_signal_at::timestamptz as first_signal_at
    from checkpoints
    inner join signals
        on checkpoints.checkpoint_id = signals.checkpoint_id
    inner join causes
        on checkpoints.checkpoint_id = causes.checkpoint_id
    inner join risk
        on checkpoints.checkpoint_id = risk.checkpoint_id
    left join taxonomy
        on causes.top_cause = taxonomy.cause_id
    left join accounts
        on checkpoints.crm_account_id = accounts.account_id
)

select * from final
