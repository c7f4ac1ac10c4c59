-- Whether the at-risk list deserves trust: the list as it would have been scored at the
-- last month end 3 and 6 months before the as-of date (backtest_months_back), from what
-- was known then (the lift fitted on the defections up to that day), against who actually
-- left in the 90 days after. Grain: backtest date.
--   precision = flagged customers who defected / flagged customers;
--   recall    = flagged customers who defected / customers who defected;
--   base rate = customers who defected / customers scored;
--   lift      = precision / base rate: how many times likelier a flagged customer was to
--               leave than a customer picked at random.
-- The customers scored are those paying that day (at most backtest_max_customers of them,
-- drawn by a stable hash of the customer id), so the rates describe the whole paying base.
with

checkpoints as (
    select * from {{ ref('int_attribution__checkpoints') }}
    where checkpoint_kind = 'backtest'
),

risk as (
    select * from {{ ref('int_attribution__risk_scores') }}
    where checkpoint_kind = 'backtest'
),

defections as (
    select
        customer_id,
        defection_date
    from {{ ref('int_defections') }}
),

as_of as (
    select {{ as_of_date() }} as as_of_date
),

-- the scored customers who defected within the horizon after their backtest date
defected as (
    select distinct checkpoints.checkpoint_id
    from checkpoints
    inner join defections
        on
            checkpoints.customer_id = defections.customer_id
            and checkpoints.as_of_date < defections.defection_date
            and checkpoints.as_of_date + {{ var('at_risk_horizon_days') }}
            >= defections.defection_date
),

outcomes as (
    select
        checkpoints.as_of_date,
        coalesce(risk.is_flagged, false) as is_flagged,
        defected.checkpoint_id is not null as has_defected
    from checkpoints
    left join risk
        on checkpoints.checkpoint_id = risk.checkpoint_id
    left join defected
        on checkpoints.checkpoint_id = defected.checkpoint_id
),

counted as (
    select
        as_of_date,
        count(*) as scored_customers,
        count(*) filter (where is_flagged) as flagged_customers,
        count(*) filter (where has_defected) as defected_customers,
        count(*) filter (where is_flagged and has_defected) as flagged_defected_customers
    from outcomes
    group by as_of_date
),

final as (
    select
        counted.as_of_date::date as backtest_as_of_date,
        (
            extract(year from age(as_of.as_of_date + 1, counted.as_of_date + 1)) * 12
            + extract(month from age(as_of.as_of_date + 1, counted.as_of_date + 1))
        )::int as months_back,
        {{ var('at_risk_horizon_days') }}::int as horizon_days,
        (counted.as_of_date + {{ var('at_risk_horizon_days') }} <= as_of.as_of_date)::boolean
            as is_horizon_complete,
        counted.scored_customers::int as scored_customers,
        counted.flagged_customers::int as flagged_customers,
        counted.defected_customers::int as defected_customers,
        counted.flagged_defected_customers::int as flagged_defected_customers,
        {{ safe_ratio('counted.flagged_customers', 'counted.scored_customers') }}
            as flagged_share,
        {{ safe_ratio('counted.flagged_defected_customers', 'counted.flagged_customers') }}
            as precision,  -- noqa: RF04
        counted.flagged_defected_customers::bigint as precision_numerator,
        counted.flagged_customers::bigint as precision_denominator,
        {{ safe_ratio('counted.flagged_defected_customers', 'counted.defected_customers') }}
            as recall,
        counted.flagged_defected_customers::bigint as recall_numerator,
        counted.defected_customers::bigint as recall_denominator,
        {{ safe_ratio('counted.defected_customers', 'counted.scored_customers') }}
            as base_rate,
        counted.defected_customers::bigint as base_rate_numerator,
        counted.scored_customers::bigint as base_rate_denominator,
        (
            {{ safe_ratio('counted.flagged_defected_customers', 'counted.flagged_customers') }}
            / nullif(
                {{ safe_ratio('counted.defected_customers', 'counted.scored_customers') }}, 0
            )
        ) as lift
    from counted
    cross join as_of
)

select * from final
