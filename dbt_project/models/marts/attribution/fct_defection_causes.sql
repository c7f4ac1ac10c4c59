-- One row per defection and cause it is attributed to. A cause's weight is its summed
-- evidence strength over all evidence strength of the defection (see the
-- attribution_cause_weights macro), so the weights of one defection sum to exactly 1.
-- A defection without any evidence gets a single row: unexplained, weight 1.
with

defections as (
    select defection_id from {{ ref('int_defections') }}
),

evidence as (
    select
        defection_id,
        cause_id,
        evidence_type,
        evidence_source,
        evidence_detail,
        strength
    from {{ ref('int_attribution__evidence') }}
    where checkpoint_kind = 'defection'
),

taxonomy as (
    select * from {{ ref('cause_taxonomy') }}
),

weighted as (
    {{ attribution_cause_weights('evidence', 'defection_id', 'taxonomy') }}
),

unexplained as (
    select
        defections.defection_id,
        'unexplained' as cause_id,
        0::numeric as strength,
        array[]::text[] as evidence,
        0 as evidence_count,
        false as is_stated,
        false as is_observed,
        1 as cause_rank,
        1::numeric as weight
    from defections
    where not exists (
        select 1 from evidence
        where evidence.defection_id = defections.defection_id
    )
),

unioned as (
    select
        weighted.defection_id,
        weighted.cause_id,
        weighted.strength,
        weighted.evidence,
        weighted.evidence_count,
        weighted.is_stated,
        weighted.is_observed,
        weighted.cause_rank,
        weighted.weight
    from weighted
    inner join defections
        on weighted.defection_id = defections.defection_id
    union all
    select * from unexplained
),

final as (
    select
        unioned.defection_id::text as defection_id,
        unioned.cause_id::text as cause_id,
        unioned.cause_rank::int as cause_rank,
        unioned.weight::numeric(9, 6) as weight,
        unioned.strength::numeric(12, 4) as strength,
        unioned.evidence::text[] as evidence,
        unioned.evidence_count::int as evidence_count,
        unioned.is_stated::boolean as is_stated,
        unioned.is_observed::boolean as is_observed,
        taxonomy.owning_function::text as owning_function
    from unioned
    left join taxonomy
        on unioned.cause_id = taxonomy.cause_id
)

select * from final
