-- One row per defection with the customer's CRM attributes as they were when it
-- happened (from the account history, so a later re-segmentation does not rewrite it),
-- and how decisive its attribution is: the top cause's margin over the next, the share of
-- the evidence families that were there to look at, and whether the attribution is
-- confident (attribution_confident_* vars).
with

defections as (
    select
        *,
        (spell_started_at at time zone 'utc')::date as spell_start_date
    from {{ ref('int_defections') }}
),

account_history as (
    select * from {{ ref('int_identity__account_history') }}
),

stated_reasons as (
    select * from {{ ref('int_defection_stated_reasons') }}
),

feedback as (
    select
        defection_id,
        count(*) as stated_reason_count
    from stated_reasons
    -- the bare mechanics of a cancellation are not feedback
    where
        not (
            reason_source = 'billing_reason'
            and reason_code in ('cancellation_requested', 'payment_failed')
        )
    group by defection_id
),

-- which evidence families there were to look at, and whether any evidence was found;
-- coverage counts the six families a signal rule can read (billing is always there)
families as (
    select
        checkpoint_id as defection_id,
        evidence_families,
        (
            1 + is_crm_linked::int + has_crm_activity::int + has_support::int
            + has_usage::int + has_survey::int
        )::numeric / 6 as evidence_family_coverage
    from {{ ref('int_attribution__evidence_families') }}
),

-- the top cause and its margin over the next (its whole weight when it is alone); causes
-- of equal strength have a margin of 0, although the rounding remainder the top cause
-- carries can leave its weight a millionth under the next one's
attribution as (
    select
        defection_id,
        max(cause_id) filter (where cause_rank = 1) as top_cause,
        max(weight) filter (where cause_rank = 1) as top_cause_weight,
        max(strength) filter (where cause_rank = 1) as top_cause_strength,
        greatest(
            max(weight) filter (where cause_rank = 1)
            - coalesce(max(weight) filter (where cause_rank = 2), 0),
            0
        ) as attribution_margin
    from {{ ref('fct_defection_causes') }}
    group by defection_id
),

explained as (
    select distinct defection_id
    from {{ ref('int_attribution__evidence') }}
    where checkpoint_kind = 'defection'
),

as_of as (
    select {{ as_of_end_at() }} as as_of_end_at
),

final as (
    select
        defections.defection_id::text as defection_id,
        defections.customer_id::text as customer_id,
        defections.crm_account_id::text as crm_account_id,
        defections.spell_started_at::timestamptz as spell_started_at,
        defections.requested_cancel_at::timestamptz as requested_cancel_at,
        defections.defected_at::timestamptz as defected_at,
        defections.defection_date::date as defection_date,
        defections.defection_month::date as defection_month,
        defections.is_involuntary::boolean as is_involuntary,
        (case when defections.is_involuntary then 'involuntary' else 'voluntary' end)::text
            as defection_type,
        defections.lost_mrr::bigint as lost_mrr,
        defections.tenure_days::int as tenure_days,
        (
            extract(year from age(defections.defection_date, defections.spell_start_date)) * 12
            + extract(month from age(defections.defection_date, defections.spell_start_date))
        )::int as tenure_months,
        account_history.segment::text as segment,
        account_history.industry::text as industry,
        account_history.employee_count::int as employee_count,
        account_history.region::text as region,
        account_history.owner_name::text as owner_name,
        (feedback.defection_id is not null)::boolean as had_feedback,
        coalesce(feedback.stated_reason_count, 0)::int as feedback_reason_count,
        coalesce(families.evidence_families, 'billing')::text as evidence_families,
        round(coalesce(families.evidence_family_coverage, 1.0 / 6), 6)::numeric(9, 6)
            as evidence_family_coverage,
        (explained.defection_id is not null)::boolean as has_evidence,
        attribution.top_cause::text as top_cause,
        attribution.top_cause_weight::numeric(9, 6) as top_cause_weight,
        (case
            when explained.defection_id is not null then attribution.attribution_margin
        end)::numeric(9, 6) as attribution_margin,
        (case
            when explained.defection_id is null then 'none'
            when
                attribution.attribution_margin >= {{ var('attribution_confident_margin') }}
                and attribution.top_cause_strength >= {{ var('attribution_confident_strength') }}
                and coalesce(families.evidence_family_coverage, 1.0 / 6)
                >= {{ var('attribution_confident_coverage') }}
                then 'confident'
            else 'tentative'
        end)::text as attribution_confidence,
        defections.won_back_at::timestamptz as won_back_at,
        defections.is_won_back::boolean as is_won_back,
        (
            defections.defected_at + make_interval(days => {{ var('winback_window_days') }})
            < as_of.as_of_end_at
        )::boolean as is_winback_window_complete
    from defections
    cross join as_of
    left join account_history
        on
            defections.crm_account_id = account_history.crm_account_id
            and defections.defected_at >= account_history.valid_from
            and defections.defected_at < account_history.valid_to
    left join feedback
        on defections.defection_id = feedback.defection_id
    left join families
        on defections.defection_id = families.defection_id
    left join explained
        on defections.defection_id = explained.defection_id
    left join attribution
        on defections.defection_id = attribution.defection_id
)

select * from final
