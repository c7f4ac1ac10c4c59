-- The comparison behind each signal rule's lift, counted. Grain: fit date x signal rule
-- (enabled, strength above 0) x segment, with 'all' for every segment together. The fit
-- dates are the as-of date (attribution and the at-risk list) and each backtest date (the
-- at-risk list as it would have been scored then: a fit counts only the defections up to
-- its date, and their stayers).
-- Compared are each defection that has matched stayers (int_attribution__stayer_checkpoints)
-- and those stayers, each only where the rule's evidence family was available, so a rule
-- is never judged on checkpoints where it could not have fired.
with

checkpoints as (
    select * from {{ ref('int_attribution__checkpoints') }}
),

families as (
    select * from {{ ref('int_attribution__evidence_families') }}
),

hits as (
    select
        checkpoint_id,
        signal_id
    from {{ ref('int_attribution__signal_hits') }}
    where checkpoint_kind in ('defection', 'stayer')
),

rules as (
    select * from {{ ref('signal_rules') }}
    where
        is_enabled
        and strength > 0
),

fit_dates as (
    select {{ as_of_date() }} as fitted_as_of
    union
    select as_of_date as fitted_as_of
    from checkpoints
    where checkpoint_kind = 'backtest'
),

matched_defections as (
    select distinct matched_defection_id as defection_id
    from checkpoints
    where checkpoint_kind = 'stayer'
),

-- the defections with stayers, and the stayers
compared as (
    select
        checkpoints.checkpoint_id,
        checkpoints.checkpoint_kind = 'defection' as is_leaver,
        checkpoints.as_of_date,
        checkpoints.segment
    from checkpoints
    where
        checkpoints.checkpoint_kind = 'stayer'
        or checkpoints.defection_id in (
            select matched_defections.defection_id from matched_defections
        )
),

-- the compared checkpoints of each fit date, counted per segment, leaver or stayer and
-- combination of available families: a handful of groups instead of a row per
-- checkpoint and rule
checkpoint_groups as (
    select
        fit_dates.fitted_as_of,
        compared.segment,
        compared.is_leaver,
        families.is_crm_linked,
        families.has_crm_activity,
        families.has_support,
        families.has_usage,
        families.has_survey,
        count(*) as checkpoints
    from fit_dates
    inner join compared
        on fit_dates.fitted_as_of >= compared.as_of_date
    inner join families
        on compared.checkpoint_id = families.checkpoint_id
    group by
        fit_dates.fitted_as_of, compared.segment, compared.is_leaver, families.is_crm_linked,
        families.has_crm_activity, families.has_support, families.has_usage,
        families.has_survey
),

-- a rule counts the checkpoints where its data was there
observable as (
    select
        checkpoint_groups.fitted_as_of,
        rules.signal_id,
        checkpoint_groups.segment,
        coalesce(sum(checkpoint_groups.checkpoints) filter (where checkpoint_groups.is_leaver), 0)
            as leaver_checkpoints,
        coalesce(
            sum(checkpoint_groups.checkpoints) filter (where not checkpoint_groups.is_leaver), 0
        ) as stayer_checkpoints
    from checkpoint_groups
    cross join rules
    where {{ evidence_family_available('rules.evidence_family', 'checkpoint_groups') }}
    group by checkpoint_groups.fitted_as_of, rules.signal_id, checkpoint_groups.segment
),

-- and its hits there (a hit exists only where its family was available)
fired as (
    select
        fit_dates.fitted_as_of,
        hits.signal_id,
        compared.segment,
        count(*) filter (where compared.is_leaver) as leaver_hits,
        count(*) filter (where not compared.is_leaver) as stayer_hits
    from fit_dates
    inner join compared
        on fit_dates.fitted_as_of >= compared.as_of_date
    inner join hits
        on compared.checkpoint_id = hits.checkpoint_id
    group by fit_dates.fitted_as_of, hits.signal_id, compared.segment
),

by_segment as (
    select
        observable.fitted_as_of,
        observable.signal_id,
        observable.segment,
        observable.leaver_checkpoints,
        coalesce(fired.leaver_hits, 0) as leaver_hits,
        observable.stayer_checkpoints,
        coalesce(fired.stayer_hits, 0) as stayer_hits
    from observable
    left join fired
        on
            observable.fitted_as_of = fired.fitted_as_of
            and observable.signal_id = fired.signal_id
            and observable.segment = fired.segment
),

counts as (
    select * from by_segment
    union all
    select
        fitted_as_of,
        signal_id,
        'all' as segment,
        sum(leaver_checkpoints) as leaver_checkpoints,
        sum(leaver_hits) as leaver_hits,
        sum(stayer_checkpoints) as stayer_checkpoints,
        sum(stayer_hits) as stayer_hits
    from by_segment
    group by fitted_as_of, signal_id
),

-- every rule at every fit date has an 'all' row, with zero counts when nothing compared
all_rows as (
    select
        fit_dates.fitted_as_of,
        rules.signal_id,
        'all' as segment
    from fit_dates
    cross join rules
    union
    select
        fitted_as_of,
        signal_id,
        segment
    from counts
),

completed as (
    select
        all_rows.fitted_as_of,
        all_rows.signal_id,
        all_rows.segment,
        coalesce(counts.leaver_checkpoints, 0) as leaver_checkpoints,
        coalesce(counts.leaver_hits, 0) as leaver_hits,
        coalesce(counts.stayer_checkpoints, 0) as stayer_checkpoints,
        coalesce(counts.stayer_hits, 0) as stayer_hits
    from all_rows
    left join counts
        on
            all_rows.fitted_as_of = counts.fitted_as_of
            and all_rows.signal_id = counts.signal_id
            and all_rows.segment = counts.segment
),

final as (
    select
        fitted_as_of::date as fitted_as_of,
        signal_id::text as signal_id,
        segment::text as segment,
        leaver_checkpoints::int as leaver_checkpoints,
        leaver_hits::int as leaver_hits,
        stayer_checkpoints::int as stayer_checkpoints,
        stayer_hits::int as stayer_hits
    from completed
)

select * from final
