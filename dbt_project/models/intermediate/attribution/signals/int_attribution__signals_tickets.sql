-- Tickets family (product_issues, slow_resolution, poor_service, hassle): the account's
-- support tickets opened in the window that meet a ticket rule, judged with what was
-- known at the checkpoint: a response or a resolution that came later had not happened.
with

windows as (
    select * from {{ ref('int_attribution__checkpoint_windows') }}
    where signal_id in (
        'product_issues_bug_volume', 'product_issues_unresolved_bug',
        'slow_resolution_first_response', 'slow_resolution_resolution_time',
        'poor_service_low_csat', 'hassle_billing_ticket'
    )
),

tickets as (
    select
        ticket_id,
        account_id,
        ticket_category,
        ticket_priority,
        opened_at,
        first_response_at,
        resolved_at,
        csat_score
    from {{ ref('stg_crm__tickets') }}
    where not coalesce(is_deleted, false)
),

-- the tickets opened in each rule's window, as they stood at the checkpoint
window_tickets as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.threshold,
        windows.min_count,
        windows.window_end_at,
        tickets.ticket_id,
        tickets.ticket_category,
        tickets.ticket_priority,
        tickets.opened_at,
        case
            when tickets.first_response_at < windows.window_end_at
                then tickets.first_response_at
        end as first_response_at,
        case
            when tickets.resolved_at < windows.window_end_at
                then tickets.resolved_at
        end as resolved_at,
        tickets.csat_score
    from windows
    inner join tickets
        on
            windows.crm_account_id = tickets.account_id
            and windows.window_start_at <= tickets.opened_at
            and windows.window_end_at > tickets.opened_at
),

-- the ticket rules, each written once
qualifying_tickets as (
    select
        checkpoint_id,
        signal_id,
        min_count,
        ticket_id,
        opened_at,
        case signal_id
            when 'product_issues_bug_volume' then format('ticket %s %s', ticket_id, ticket_category)
            when 'product_issues_unresolved_bug'
                then format('ticket %s %s bug unresolved', ticket_id, ticket_priority)
            when 'slow_resolution_first_response'
                then format(
                    'ticket %s first response after %s h', ticket_id,
                    round(
                        extract(epoch from coalesce(first_response_at, window_end_at) - opened_at)
                        / 3600
                    )
                )
            when 'slow_resolution_resolution_time'
                then format(
                    'ticket %s resolved after %s days', ticket_id,
                    round(extract(epoch from resolved_at - opened_at) / 86400, 1)
                )
            when 'poor_service_low_csat' then format('ticket %s csat %s', ticket_id, csat_score)
            when 'hassle_billing_ticket' then format('ticket %s billing', ticket_id)
        end as item_detail
    from window_tickets
    where case signal_id
        when 'product_issues_bug_volume' then ticket_category in ('bug', 'outage')
        when 'product_issues_unresolved_bug'
            then
                ticket_category = 'bug'
                and ticket_priority in ('high', 'urgent')
                and resolved_at is null
        -- a ticket still waiting for its first response counts from when it was opened
        when 'slow_resolution_first_response'
            then
                coalesce(first_response_at, window_end_at) - opened_at
                > make_interval(hours => threshold::int)
        -- resolution time only of resolved tickets, and not of bugs and outages: they wait
        -- for engineering's fix, which is product_issues, not support's pace
        when 'slow_resolution_resolution_time'
            then
                ticket_category not in ('bug', 'outage')
                and resolved_at - opened_at > make_interval(secs => threshold * 86400)
        when 'poor_service_low_csat' then csat_score <= threshold
        when 'hassle_billing_ticket' then ticket_category = 'billing'
    end
),

final as (
    select
        checkpoint_id,
        signal_id as evidence_source,
        null::text as reason_code,
        case
            when count(*) > 1 and signal_id = 'product_issues_bug_volume'
                then format('%s bug/outage tickets: ', count(*))
            else ''
        end
        || string_agg(item_detail, '; ' order by opened_at, ticket_id) as evidence_detail,
        min(opened_at) as observed_at,
        count(*) as item_count,
        min(min_count) as min_count
    from qualifying_tickets
    group by checkpoint_id, signal_id
)

select * from final
