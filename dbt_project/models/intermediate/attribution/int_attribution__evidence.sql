-- One row per piece of evidence for a cause at a checkpoint (a defection, a customer
-- paying now, or one paying at a backtest date):
--   stated:   each distinct reason a defecting customer gave, mapped to a cause by
--             stated_reason_map, with the strength of its source from evidence_strengths;
--             what customers say keeps its strength;
--   observed: each signal rule that fired at the checkpoint where its data was there
--             (int_attribution__signal_hits), with the rule's seed strength scaled by how
--             well it tells leavers from stayers (int_attribution__signal_lift, for the
--             checkpoint's segment, else for all segments): a rule as common among
--             customers who stayed carries about no weight. Defections and customers
--             paying now use the lift fitted at the as-of date; a backtest checkpoint the
--             one fitted at its own date, from what was known then.
-- Every observed row shows the lift and multiplier that scaled it. The rules, thresholds,
-- windows and prior strengths come from the seeds; nothing is tuned here.
with

checkpoints as (
    select * from {{ ref('int_attribution__checkpoints') }}
),

stated_reason_map as (
    select * from {{ ref('stated_reason_map') }}
    where cause_id is not null
),

evidence_strengths as (
    select * from {{ ref('evidence_strengths') }}
    where strength > 0
),

stated_reasons as (
    select * from {{ ref('int_attribution__signals_stated') }}
),

hits as (
    select * from {{ ref('int_attribution__signal_hits') }}
    where checkpoint_kind in ('defection', 'active', 'backtest')
),

lift as (
    select * from {{ ref('int_attribution__signal_lift') }}
),

as_of as (
    select {{ as_of_date() }} as as_of_date
),

-- reason codes mapped to no cause (such as `other`) and sources without strength drop out
stated as (
    select
        stated_reasons.checkpoint_id,
        stated_reason_map.cause_id,
        'stated' as evidence_type,
        stated_reasons.evidence_source,
        stated_reasons.reason_code,
        stated_reasons.evidence_detail,
        evidence_strengths.strength as seed_strength,
        null::numeric as lift,
        1::numeric as strength_multiplier,
        evidence_strengths.strength,
        stated_reasons.observed_at
    from stated_reasons
    inner join stated_reason_map
        on
            stated_reasons.evidence_source = stated_reason_map.reason_source
            and stated_reasons.reason_code = stated_reason_map.reason_code
    inner join evidence_strengths
        on stated_reasons.evidence_source = evidence_strengths.evidence_source
),

-- the lift of the checkpoint's fit date: the backtest's own date, else the as-of date
hits_dated as (
    select
        hits.*,
        case
            when hits.checkpoint_kind = 'backtest' then checkpoints.as_of_date
            else as_of.as_of_date
        end as fitted_as_of
    from hits
    inner join checkpoints
        on hits.checkpoint_id = checkpoints.checkpoint_id
    cross join as_of
),

observed as (
    select
        hits_dated.checkpoint_id,
        hits_dated.cause_id,
        'observed' as evidence_type,
        hits_dated.signal_id as evidence_source,
        null::text as reason_code,
        hits_dated.evidence_detail,
        hits_dated.seed_strength,
        coalesce(segment_lift.calibrated_lift, all_lift.calibrated_lift) as lift,
        coalesce(segment_lift.strength_multiplier, all_lift.strength_multiplier, 1)
            as strength_multiplier,
        hits_dated.seed_strength
        * coalesce(segment_lift.strength_multiplier, all_lift.strength_multiplier, 1)
            as strength,
        hits_dated.observed_at
    from hits_dated
    left join lift as segment_lift
        on
            hits_dated.fitted_as_of = segment_lift.fitted_as_of
            and hits_dated.signal_id = segment_lift.signal_id
            and hits_dated.segment = segment_lift.segment
    left join lift as all_lift
        on
            hits_dated.fitted_as_of = all_lift.fitted_as_of
            and hits_dated.signal_id = all_lift.signal_id
            and all_lift.segment = 'all'
),

unioned as (
    select * from stated
    union all
    select * from observed
),

final as (
    select
        md5(
            unioned.checkpoint_id || '|' || unioned.evidence_source || '|'
            || coalesce(unioned.reason_code, '')
        )::text as evidence_id,
        unioned.checkpoint_id::text as checkpoint_id,
        checkpoints.checkpoint_kind::text as checkpoint_kind,
        checkpoints.defection_id::text as defection_id,
        checkpoints.customer_id::text as customer_id,
        checkpoints.crm_account_id::text as crm_account_id,
        checkpoints.as_of_date::date as as_of_date,
        unioned.cause_id::text as cause_id,
        unioned.evidence_type::text as evidence_type,
        unioned.evidence_source::text as evidence_source,
        unioned.reason_code::text as reason_code,
        unioned.evidence_detail::text as evidence_detail,
        unioned.seed_strength::numeric as seed_strength,
        unioned.lift::numeric as lift,
        unioned.strength_multiplier::numeric as strength_multiplier,
        unioned.strength::numeric as strength,
        unioned.observed_at::timestamptz as observed_at
    from unioned
    inner join checkpoints
        on unioned.checkpoint_id = checkpoints.checkpoint_id
)

select * from final
