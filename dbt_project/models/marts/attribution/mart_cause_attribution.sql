-- Defections by cause over time. Grain: defection month x segment (at defection time) x
-- cause x whether the defection's attribution is confident (fct_defections). Each
-- defection is spread over its causes by weight, so defections_attributed sums to the
-- month's defections and lost_mrr_attributed to the month's lost MRR; filter on
-- is_confident_attribution to read only the defections whose evidence was decisive.
with

defections as (
    select
        defection_id,
        defection_month,
        lost_mrr
    from {{ ref('int_defections') }}
),

defection_segments as (
    select
        defection_id,
        segment,
        had_feedback,
        has_evidence,
        attribution_confidence = 'confident' as is_confident_attribution
    from {{ ref('fct_defections') }}
),

causes as (
    select
        defection_id,
        cause_id,
        weight
    from {{ ref('fct_defection_causes') }}
),

taxonomy as (
    select * from {{ ref('cause_taxonomy') }}
),

months as (
    select
        defections.defection_month,
        count(*) as month_defections,
        sum(defections.lost_mrr) as month_lost_mrr,
        count(*) filter (where defection_segments.had_feedback) as month_with_feedback,
        count(*) filter (where defection_segments.has_evidence) as month_with_evidence
    from defections
    left join defection_segments
        on defections.defection_id = defection_segments.defection_id
    group by defections.defection_month
),

attributed as (
    select
        defections.defection_month,
        coalesce(defection_segments.segment, 'unknown') as segment,
        causes.cause_id,
        coalesce(defection_segments.is_confident_attribution, false) as is_confident_attribution,
        sum(causes.weight) as defections_attributed,
        sum(causes.weight * defections.lost_mrr) as lost_mrr_attributed,
        count(*) as defections_with_cause
    from defections
    inner join causes
        on defections.defection_id = causes.defection_id
    left join defection_segments
        on defections.defection_id = defection_segments.defection_id
    group by
        defections.defection_month, coalesce(defection_segments.segment, 'unknown'),
        causes.cause_id, coalesce(defection_segments.is_confident_attribution, false)
),

final as (
    select
        attributed.defection_month::date as defection_month,
        attributed.segment::text as segment,
        attributed.cause_id::text as cause_id,
        attributed.is_confident_attribution::boolean as is_confident_attribution,
        taxonomy.cause_label::text as cause_label,
        taxonomy.owning_function::text as owning_function,
        attributed.defections_attributed::numeric(18, 6) as defections_attributed,
        attributed.defections_with_cause::int as defections_with_cause,
        attributed.lost_mrr_attributed::numeric(24, 6) as lost_mrr_attributed,
        round(attributed.defections_attributed / months.month_defections, 6)::numeric(9, 6)
            as share_of_month_defections,
        (case
            when months.month_lost_mrr > 0
                then round(attributed.lost_mrr_attributed / months.month_lost_mrr, 6)
        end)::numeric(9, 6) as share_of_month_lost_mrr,
        months.month_defections::int as month_defections,
        months.month_lost_mrr::bigint as month_lost_mrr,
        round(months.month_with_feedback::numeric / months.month_defections, 6)::numeric(9, 6)
            as month_feedback_coverage,
        round(months.month_with_evidence::numeric / months.month_defections, 6)::numeric(9, 6)
            as month_evidence_coverage
    from attributed
    inner join months
        on attributed.defection_month = months.defection_month
    left join taxonomy
        on attributed.cause_id = taxonomy.cause_id
)

select * from final
