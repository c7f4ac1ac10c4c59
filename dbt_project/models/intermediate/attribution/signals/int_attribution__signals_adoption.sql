-- Adoption family (failed_adoption): the account's latest min_count usage snapshots in the
-- window all have fewer active users than the threshold share of the licensed seats.
with

windows as (
    select * from {{ ref('int_attribution__checkpoint_windows') }}
    where signal_id = 'failed_adoption_low_usage'
),

-- The one performance pre-filter of the signal families. The rule can fire only for an
-- account with at least one snapshot under the threshold (one account in thirteen at
-- 100,000 customers), so only their snapshots are paired with the windows. Measured at
-- 100,000 customers, one backend without parallel workers: this family 1.1-1.3 s of CPU
-- without it, 0.4-0.5 s with it (the whole evidence about 8.3 s and 7.0 s), same rows.
-- It restates the rule's comparison below; change both together.
low_usage_accounts as (
    select distinct snapshots.account_id
    from {{ ref('stg_crm__usage_snapshots') }} as snapshots
    inner join {{ ref('signal_rules') }} as rules
        on
            rules.signal_id = 'failed_adoption_low_usage'
            and snapshots.active_users::numeric < rules.threshold * snapshots.licensed_seats
    where
        not coalesce(snapshots.is_deleted, false)
        and snapshots.licensed_seats > 0
),

usage_snapshots as (
    select
        account_id,
        snapshot_date,
        active_users,
        licensed_seats
    from {{ ref('stg_crm__usage_snapshots') }}
    where
        not coalesce(is_deleted, false)
        and account_id in (select low_usage_accounts.account_id from low_usage_accounts)
),

recent_snapshots as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.threshold,
        windows.min_count,
        usage_snapshots.snapshot_date,
        usage_snapshots.active_users,
        usage_snapshots.licensed_seats,
        row_number() over (
            partition by windows.checkpoint_id
            order by usage_snapshots.snapshot_date desc
        ) as recency
    from windows
    inner join usage_snapshots
        on
            windows.crm_account_id = usage_snapshots.account_id
            and windows.window_start_date <= usage_snapshots.snapshot_date
            and windows.window_end_date > usage_snapshots.snapshot_date
),

final as (
    select
        checkpoint_id,
        signal_id as evidence_source,
        null::text as reason_code,
        format(
            '%s of last %s snapshots under %s%% of seats (%s)',
            count(*) filter (
                where active_users::numeric < threshold * licensed_seats
            ),
            count(*),
            round(min(threshold) * 100),
            string_agg(
                format('%s: %s of %s', snapshot_date, active_users, licensed_seats),
                ', ' order by snapshot_date desc
            )
        ) as evidence_detail,
        max(snapshot_date)::timestamp at time zone 'utc' as observed_at,
        -- fewer snapshots in the window than min_count cannot show a trend
        count(*) as item_count,
        min(min_count) as min_count
    from recent_snapshots
    where recency <= min_count
    group by checkpoint_id, signal_id
    having bool_and(licensed_seats > 0 and active_users::numeric < threshold * licensed_seats)
)

select * from final
