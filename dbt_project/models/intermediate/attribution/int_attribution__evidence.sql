-- One row per piece of evidence for a cause at a checkpoint (a defection or an active
-- customer), from the signal families (int_attribution__signals_*), each of which finds
-- its items with the same columns:
--   stated:   each distinct reason a defecting customer gave, mapped to a cause by
--             stated_reason_map, with the strength of its source from evidence_strengths;
--   observed: each signal rule of signal_rules that fires in the checkpoint's lookback
--             window (at least min_count rows behind it), with the rule's cause and
--             strength, kept only where the rule's evidence family was available at the
--             checkpoint (int_attribution__evidence_families): absent data is never
--             evidence.
-- The rules, thresholds, windows and strengths come from the seeds; nothing is tuned here.
with

checkpoints as (
    select * from {{ ref('int_attribution__checkpoints') }}
),

rules as (
    select * from {{ ref('signal_rules') }}
),

stated_reason_map as (
    select * from {{ ref('stated_reason_map') }}
    where cause_id is not null
),

evidence_strengths as (
    select * from {{ ref('evidence_strengths') }}
    where strength > 0
),

families as (
    select * from {{ ref('int_attribution__evidence_families') }}
),

stated_reasons as (
    select * from {{ ref('int_attribution__signals_stated') }}
),

signals as (
    select * from {{ ref('int_attribution__signals_fit') }}
    union all
    select * from {{ ref('int_attribution__signals_oversold') }}
    union all
    select * from {{ ref('int_attribution__signals_adoption') }}
    union all
    select * from {{ ref('int_attribution__signals_tickets') }}
    union all
    select * from {{ ref('int_attribution__signals_money') }}
    union all
    select * from {{ ref('int_attribution__signals_involuntary') }}
    union all
    select * from {{ ref('int_attribution__signals_contact') }}
    union all
    select * from {{ ref('int_attribution__signals_surveys') }}
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

observed as (
    select
        signals.checkpoint_id,
        rules.cause_id,
        'observed' as evidence_type,
        signals.evidence_source,
        signals.reason_code,
        signals.evidence_detail,
        rules.strength,
        signals.observed_at
    from signals
    inner join rules
        on signals.evidence_source = rules.signal_id
    inner join families
        on signals.checkpoint_id = families.checkpoint_id
    where
        signals.item_count >= signals.min_count
        and case rules.evidence_family
            when 'billing' then true
            when 'crm_account' then families.is_crm_linked
            when 'crm_activity' then families.has_crm_activity
            when 'support' then families.has_support
            when 'usage' then families.has_usage
            when 'survey' then families.has_survey
            else false
        end
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
        unioned.strength::numeric as strength,
        unioned.observed_at::timestamptz as observed_at
    from unioned
    inner join checkpoints
        on unioned.checkpoint_id = checkpoints.checkpoint_id
)

select * from final
