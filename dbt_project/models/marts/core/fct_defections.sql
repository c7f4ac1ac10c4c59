-- One row per defection with the customer's CRM attributes as they were when it
-- happened (from the account history, so a later re-segmentation does not rewrite it).
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

-- which evidence families there were to look at, and whether any evidence was found
families as (
    select
        checkpoint_id as defection_id,
        evidence_families
    from {{ ref('int_attribution__evidence_families') }}
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
        (explained.defection_id is not null)::boolean as has_evidence,
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
)

select * from final
