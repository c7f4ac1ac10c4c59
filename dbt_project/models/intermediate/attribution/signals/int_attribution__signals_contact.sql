-- Contact family (neglect): nobody talked to the customer for threshold days before the
-- checkpoint and the customer answered no survey in the lookback window. Silence counts
-- from the last touchpoint, or from the start of the paid relationship when none was
-- logged; whether the CRM logged touchpoints at all is the crm_activity family's
-- availability, decided in int_attribution__signal_hits. With the account_history
-- baseline the silence must also last baseline_factor times the account's usual gap
-- between touchpoints (their mean gap over the year before the last one): an account
-- looked after every two months is not neglected after seven weeks of quiet.
with

windows as (
    select * from {{ ref('int_attribution__checkpoint_windows') }}
    where signal_id = 'neglect_no_touchpoint'
),

-- an exit survey is the customer leaving, not the customer being heard
survey_responses as (
    select
        crm_account_id,
        submitted_at
    from {{ ref('int_survey__responses_matched') }}
    where
        is_matched
        and survey_kind <> 'exit'
),

-- not materialized: both lookups below go through the activities' index
activities as not materialized (
    select
        account_id,
        occurred_at
    from {{ ref('stg_crm__activities') }}
    where not coalesce(is_deleted, false)
),

-- the checkpoints whose account answered no survey in the window; only they can be
-- neglected, so only they look up their last touchpoint below
silent_windows as (
    select windows.*
    from windows
    where not exists (
        select
        from survey_responses
        where
            survey_responses.crm_account_id = windows.crm_account_id
            and survey_responses.submitted_at >= windows.window_start_at
            and survey_responses.submitted_at < windows.window_end_at
    )
),

-- the last touchpoint before the checkpoint, looked up per checkpoint in the activities'
-- (account_id, occurred_at, is_deleted) index rather than by joining every activity of
-- the account
silence as (
    select
        silent_windows.checkpoint_id,
        silent_windows.signal_id,
        silent_windows.crm_account_id,
        silent_windows.threshold,
        silent_windows.baseline,
        silent_windows.baseline_factor,
        silent_windows.lookback_days,
        silent_windows.min_count,
        silent_windows.window_end_at,
        last_touch.last_touch_at,
        greatest(last_touch.last_touch_at, silent_windows.relationship_started_at)
            as silent_since
    from silent_windows
    cross join
        lateral (
            select max(activities.occurred_at) as last_touch_at
            from activities
            where
                activities.account_id = silent_windows.crm_account_id
                and activities.occurred_at < silent_windows.window_end_at
        ) as last_touch
),

-- the silences long enough by the absolute threshold; for a rule with a baseline, the
-- account's usual gap: the span of its touchpoints in the year up to the last one over
-- their number less one (none with fewer than two: then the threshold alone decides)
long_silences as (
    select
        silence.*,
        usual.usual_gap
    from silence
    left join
        lateral (
            select
                case
                    when count(*) >= 2
                        then
                            (max(activities.occurred_at) - min(activities.occurred_at))
                            / (count(*) - 1)
                end as usual_gap
            from activities
            where
                silence.baseline = 'account_history'
                and activities.account_id = silence.crm_account_id
                and activities.occurred_at <= silence.last_touch_at
                and activities.occurred_at >= silence.last_touch_at - interval '365 days'
        ) as usual
        on true
    where
        silence.silent_since is not null
        and silence.window_end_at - silence.silent_since
        >= make_interval(days => silence.threshold::int)
),

final as (
    select
        checkpoint_id,
        signal_id as evidence_source,
        null::text as reason_code,
        format(
            'no touchpoint for %s days (%s); no survey answered in %s days',
            extract(day from window_end_at - silent_since)::int,
            coalesce(
                'last ' || to_char(last_touch_at at time zone 'utc', 'YYYY-MM-DD'), 'none logged'
            ),
            lookback_days
        )
        || case
            when usual_gap is not null
                then format('; usually in touch every %s days', extract(day from usual_gap)::int)
            else ''
        end as evidence_detail,
        -- the day the silence reached the threshold (and the account's baseline)
        silent_since + greatest(
            make_interval(days => threshold::int),
            coalesce(usual_gap * baseline_factor, interval '0 days')
        ) as observed_at,
        1 as item_count,
        min_count
    from long_silences
    where
        usual_gap is null
        or window_end_at - silent_since >= usual_gap * baseline_factor
)

select * from final
