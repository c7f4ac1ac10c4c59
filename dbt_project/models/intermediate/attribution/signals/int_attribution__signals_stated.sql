-- Stated family: each distinct reason (source and code) a defecting customer gave, at the
-- defection's checkpoint. Which cause a reason points to, and how strongly, is decided in
-- int_attribution__evidence (stated_reason_map, evidence_strengths), as a rule's cause and
-- strength are for the observed families; the columns are theirs.
with

checkpoints as (
    select
        checkpoint_id,
        defection_id
    from {{ ref('int_attribution__checkpoints') }}
    where checkpoint_kind = 'defection'
),

stated_reasons as (
    select * from {{ ref('int_defection_stated_reasons') }}
),

-- a reason given more than once through the same source (several exit responses, the
-- feedback of several ending subscriptions) counts once, from when it was first stated
distinct_reasons as (
    select
        defection_id,
        reason_source,
        reason_code,
        min(stated_at) as stated_at,
        min(left(regexp_replace(comment, '\s+', ' ', 'g'), 80)) as short_comment,
        count(*) as item_count
    from stated_reasons
    group by defection_id, reason_source, reason_code
),

final as (
    select
        checkpoints.checkpoint_id,
        distinct_reasons.reason_source as evidence_source,
        distinct_reasons.reason_code,
        replace(distinct_reasons.reason_source, '_', ' ') || ': ' || distinct_reasons.reason_code
        || coalesce(' ("' || distinct_reasons.short_comment || '")', '') as evidence_detail,
        distinct_reasons.stated_at as observed_at,
        distinct_reasons.item_count,
        1 as min_count
    from distinct_reasons
    inner join checkpoints
        on distinct_reasons.defection_id = checkpoints.defection_id
)

select * from final
