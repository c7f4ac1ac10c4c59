-- How well each signal rule tells the customers who left from those who stayed, and the
-- strength that earns it. Grain: fit date x signal rule x segment ('all' for every
-- segment together), from the counts of int_attribution__signal_counts:
--   leaver rate = (leaver hits + 0.5) / (leaver checkpoints + 1), stayer rate likewise
--   (half a hit added, so that no rate is 0);
--   lift = leaver rate / stayer rate, with a 95% interval from the standard error of its
--   logarithm;
--   calibrated lift = the lift shrunk toward a prior by the precision of each (normal
--   prior on the log lift, see the shrink_log_lift macro): for 'all' the prior is
--   lift_prior, for a segment the rule's calibrated lift over all segments. Thin counts
--   have a wide interval and stay close to the prior;
--   strength multiplier = ln(calibrated lift) / ln(lift_prior) within
--   [lift_min_multiplier, lift_max_multiplier]: about 0 at a lift of 1 (as common among
--   stayers as among leavers), 1 from lift_prior on;
--   strength = the seed's strength x the multiplier. A rule with lift_calibrated false
--   (a fact about the defection itself, such as an involuntary end, that a stayer cannot
--   show) keeps its seed strength.
with

counts as (
    select * from {{ ref('int_attribution__signal_counts') }}
),

rules as (
    select * from {{ ref('signal_rules') }}
    where
        is_enabled
        and strength > 0
),

observed as (
    select
        counts.*,
        (counts.leaver_hits + 0.5)::float8 / (counts.leaver_checkpoints + 1) as leaver_rate,
        (counts.stayer_hits + 0.5)::float8 / (counts.stayer_checkpoints + 1) as stayer_rate,
        case
            when counts.leaver_checkpoints > 0 and counts.stayer_checkpoints > 0
                then sqrt(
                    1.0 / (counts.leaver_hits + 0.5) - 1.0 / (counts.leaver_checkpoints + 1)
                    + 1.0 / (counts.stayer_hits + 0.5) - 1.0 / (counts.stayer_checkpoints + 1)
                )
        end as log_lift_se
    from counts
),

shrunk_all as (
    select
        observed.*,
        {{ shrink_log_lift(
            'ln(observed.leaver_rate / observed.stayer_rate)', 'observed.log_lift_se',
            'ln(' ~ var('lift_prior') ~ ')', var('lift_prior_sd')
        ) }} as calibrated_log_lift
    from observed
    where observed.segment = 'all'
),

shrunk_segments as (
    select
        observed.*,
        {{ shrink_log_lift(
            'ln(observed.leaver_rate / observed.stayer_rate)', 'observed.log_lift_se',
            'shrunk_all.calibrated_log_lift', var('lift_segment_sd')
        ) }} as calibrated_log_lift
    from observed
    inner join shrunk_all
        on
            observed.fitted_as_of = shrunk_all.fitted_as_of
            and observed.signal_id = shrunk_all.signal_id
    where observed.segment <> 'all'
),

unioned as (
    select * from shrunk_all
    union all
    select * from shrunk_segments
),

calibrated as (
    select
        unioned.*,
        rules.cause_id,
        rules.lift_calibrated,
        rules.strength as seed_strength,
        case
            when rules.lift_calibrated
                then least(
                    {{ var('lift_max_multiplier') }}::float8,
                    greatest(
                        {{ var('lift_min_multiplier') }}::float8,
                        unioned.calibrated_log_lift / ln({{ var('lift_prior') }})
                    )
                )
            else 1
        end as strength_multiplier
    from unioned
    inner join rules
        on unioned.signal_id = rules.signal_id
),

final as (
    select
        fitted_as_of::date as fitted_as_of,
        (fitted_as_of = {{ as_of_date() }})::boolean as is_current_fit,
        signal_id::text as signal_id,
        cause_id::text as cause_id,
        segment::text as segment,
        leaver_checkpoints::int as leaver_checkpoints,
        leaver_hits::int as leaver_hits,
        stayer_checkpoints::int as stayer_checkpoints,
        stayer_hits::int as stayer_hits,
        round(leaver_rate::numeric, 6) as leaver_rate,
        round(stayer_rate::numeric, 6) as stayer_rate,
        round((leaver_rate / stayer_rate)::numeric, 6) as lift,
        round(exp(ln(leaver_rate / stayer_rate) - 1.96 * log_lift_se)::numeric, 6)
            as lift_ci_low,
        round(exp(ln(leaver_rate / stayer_rate) + 1.96 * log_lift_se)::numeric, 6)
            as lift_ci_high,
        round(exp(calibrated_log_lift)::numeric, 6) as calibrated_lift,
        lift_calibrated::boolean as is_calibrated,
        seed_strength::numeric as seed_strength,
        round(strength_multiplier::numeric, 6) as strength_multiplier,
        (seed_strength * round(strength_multiplier::numeric, 6))::numeric as strength
    from calibrated
)

select * from final
