{{ config(materialized='view') }}

-- Contact family (neglect): nobody talked to the customer for threshold days before the
-- checkpoint and the customer answered no survey in the lookback window. Silence counts
-- from the last touchpoint, or from the start of the paid relationship when none was
-- logged; whether the CRM logged touchpoints at all is the crm_activity family's
-- availability, decided in int_attribution__evidence.
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

activities as (
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
        silent_windows.threshold,
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
        ) as evidence_detail,
        -- the day the silence reached the threshold
        silent_since + make_interval(days => threshold::int) as observed_at,
        1 as item_count,
        min_count
    from silence
    where
        silent_since is not null
        and window_end_at - silent_since >= make_interval(days => threshold::int)
)

select * from final
