-- Why each signal rule counts as much as it does. Grain: signal rule x segment (`all`
-- for every segment together), at the as-of date. How often the rule fired at defections
-- against how often it fired for the customers who stayed at comparable moments (same
-- month, tenure band and segment), the lift with its 95% interval, the lift shrunk toward
-- the seed's prior, and the strength it earns the rule's evidence
-- (int_attribution__signal_counts, int_attribution__signal_lift).
with

lift as (
    select * from {{ ref('int_attribution__signal_lift') }}
    where is_current_fit
),

rules as (
    select
        signal_id,
        evidence_family,
        description
    from {{ ref('signal_rules') }}
),

taxonomy as (
    select
        cause_id,
        owning_function
    from {{ ref('cause_taxonomy') }}
),

final as (
    select
        lift.fitted_as_of::date as as_of_date,
        lift.signal_id::text as signal_id,
        lift.segment::text as segment,
        lift.cause_id::text as cause_id,
        taxonomy.owning_function::text as owning_function,
        rules.evidence_family::text as evidence_family,
        lift.leaver_checkpoints::int as leaver_checkpoints,
        lift.leaver_hits::int as leaver_hits,
        lift.leaver_rate::numeric(9, 6) as leaver_rate,
        lift.stayer_checkpoints::int as stayer_checkpoints,
        lift.stayer_hits::int as stayer_hits,
        lift.stayer_rate::numeric(9, 6) as stayer_rate,
        lift.lift::numeric(18, 6) as lift,
        lift.lift_ci_low::numeric(18, 6) as lift_ci_low,
        lift.lift_ci_high::numeric(18, 6) as lift_ci_high,
        lift.calibrated_lift::numeric(18, 6) as calibrated_lift,
        lift.is_calibrated::boolean as is_calibrated,
        lift.seed_strength::numeric(12, 4) as seed_strength,
        lift.strength_multiplier::numeric(9, 6) as strength_multiplier,
        lift.strength::numeric(12, 6) as strength,
        rules.description::text as rule_description
    from lift
    inner join rules
        on lift.signal_id = rules.signal_id
    left join taxonomy
        on lift.cause_id = taxonomy.cause_id
)

select * from final
