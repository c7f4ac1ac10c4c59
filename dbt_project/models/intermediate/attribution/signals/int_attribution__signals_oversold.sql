-- Oversold family: a closed-won deal whose promised go-live slipped by more than the
-- rule's threshold in days, judged by what had happened by the checkpoint (a go-live
-- after it had not happened yet).
with

windows as (
    select * from {{ ref('int_attribution__checkpoint_windows') }}
    where signal_id = 'oversold_go_live_late'
),

deals as (
    select
        deal_id,
        account_id,
        promised_go_live_date,
        go_live_date,
        closed_at
    from {{ ref('stg_crm__deals') }}
    where
        deal_stage = 'closed_won'
        and promised_go_live_date is not null
        and not coalesce(is_deleted, false)
),

-- the deals closed before the checkpoint, whatever their age: a late go-live is a state
-- of the relationship, not an event of the lookback window
go_live_by_checkpoint as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.min_count,
        deals.deal_id,
        deals.promised_go_live_date,
        case when deals.go_live_date < windows.window_end_date then deals.go_live_date end
            as go_live_date,
        (deals.promised_go_live_date + windows.threshold::int) as deadline_date,
        windows.window_end_date
    from windows
    inner join deals
        on
            windows.crm_account_id = deals.account_id
            and windows.window_end_at > deals.closed_at
),

final as (
    select
        checkpoint_id,
        signal_id as evidence_source,
        null::text as reason_code,
        string_agg(
            case
                when go_live_date is not null
                    then format(
                        'deal %s went live %s, %s days after the promised %s',
                        deal_id, go_live_date, go_live_date - promised_go_live_date,
                        promised_go_live_date
                    )
                else format(
                    'deal %s promised go-live %s, not live %s days later',
                    deal_id, promised_go_live_date, window_end_date - 1 - promised_go_live_date
                )
            end,
            '; ' order by deal_id
        ) as evidence_detail,
        -- the first day past the deadline of the earliest late deal
        (min(deadline_date) + 1)::timestamp at time zone 'utc' as observed_at,
        count(*) as item_count,
        min(min_count) as min_count
    from go_live_by_checkpoint
    where
        deadline_date < window_end_date
        and (go_live_date is null or go_live_date > deadline_date)
    group by checkpoint_id, signal_id
)

select * from final
