-- Which families of evidence were there to look at, per checkpoint. A signal rule fires
-- only where its family was available (signal_rules.evidence_family), so a missing source,
-- an account without a CRM link or a CRM that logged nothing in the window is never read
-- as silence, low usage or an unhappy customer.
--   stated        the defection has a stated reason (exit survey or billing cancellation)
--   billing       always: every checkpoint is a billing customer
--   crm_account   the customer's billing record names a CRM account that exists
--   crm_activity  linked, and the CRM logged touchpoints (for any account) in the window
--   support       linked, and the CRM logged tickets (for any account) in the window
--   usage         linked, and usage snapshots were synced (for any account) in the window
--   survey        linked, and survey responses arrived (from anyone) in the survey window
with

checkpoints as (
    select * from {{ ref('int_attribution__checkpoints') }}
),

accounts as (
    select crm_account_id
    from {{ ref('int_identity__account_history') }}
    where is_current
),

stated as (
    select distinct defection_id
    from {{ ref('int_defection_stated_reasons') }}
),

-- the span each CRM or survey log covers: a source that is not connected has no rows, so
-- its span is null and it is available nowhere
activity_log as (
    select
        min(occurred_at) as first_at,
        max(occurred_at) as last_at
    from {{ ref('stg_crm__activities') }}
    where not coalesce(is_deleted, false)
),

ticket_log as (
    select
        min(opened_at) as first_at,
        max(opened_at) as last_at
    from {{ ref('stg_crm__tickets') }}
    where not coalesce(is_deleted, false)
),

usage_log as (
    select
        (min(snapshot_date)::timestamp at time zone 'utc') as first_at,
        (max(snapshot_date)::timestamp at time zone 'utc') as last_at
    from {{ ref('stg_crm__usage_snapshots') }}
    where not coalesce(is_deleted, false)
),

survey_log as (
    select
        min(submitted_at) as first_at,
        max(submitted_at) as last_at
    from {{ ref('stg_survey__responses') }}
),

windows as (
    select
        checkpoints.checkpoint_id,
        checkpoints.window_end_at,
        checkpoints.window_end_at - make_interval(days => {{ var('attribution_lookback_days') }})
            as window_start_at,
        checkpoints.window_end_at - make_interval(days => {{ var('survey_lookback_days') }})
            as survey_window_start_at,
        stated.defection_id is not null as has_stated,
        accounts.crm_account_id is not null as is_crm_linked
    from checkpoints
    left join stated
        on checkpoints.defection_id = stated.defection_id
    left join accounts
        on checkpoints.crm_account_id = accounts.crm_account_id
),

flags as (
    select
        windows.checkpoint_id,
        windows.has_stated,
        windows.is_crm_linked,
        windows.is_crm_linked
        and activity_log.first_at < windows.window_end_at
        and activity_log.last_at >= windows.window_start_at as has_crm_activity,
        windows.is_crm_linked
        and ticket_log.first_at < windows.window_end_at
        and ticket_log.last_at >= windows.window_start_at as has_support,
        windows.is_crm_linked
        and usage_log.first_at < windows.window_end_at
        and usage_log.last_at >= windows.window_start_at as has_usage,
        windows.is_crm_linked
        and survey_log.first_at < windows.window_end_at
        and survey_log.last_at >= windows.survey_window_start_at as has_survey
    from windows
    cross join activity_log
    cross join ticket_log
    cross join usage_log
    cross join survey_log
),

final as (
    select
        checkpoint_id::text as checkpoint_id,
        has_stated::boolean as has_stated,
        is_crm_linked::boolean as is_crm_linked,
        coalesce(has_crm_activity, false)::boolean as has_crm_activity,
        coalesce(has_support, false)::boolean as has_support,
        coalesce(has_usage, false)::boolean as has_usage,
        coalesce(has_survey, false)::boolean as has_survey,
        concat_ws(
            ',',
            case when has_stated then 'stated' end,
            'billing',
            case when is_crm_linked then 'crm_account' end,
            case when has_crm_activity then 'crm_activity' end,
            case when has_support then 'support' end,
            case when has_usage then 'usage' end,
            case when has_survey then 'survey' end
        )::text as evidence_families
    from flags
)

select * from final
