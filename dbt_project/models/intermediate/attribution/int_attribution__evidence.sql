-- One row per piece of evidence for a cause at a checkpoint (a defection or an active
-- customer):
--   stated:   each distinct reason a defecting customer gave (exit survey, billing
--             cancellation feedback and reason), mapped to a cause by stated_reason_map,
--             with the strength of its source from evidence_strengths;
--   observed: each signal rule of signal_rules that fires in the checkpoint's lookback
--             window, with the rule's strength and a detail naming the rows behind it,
--             kept only where the rule's evidence family was available at the checkpoint
--             (int_attribution__evidence_families): absent data is never evidence.
-- The rules, thresholds, windows and strengths come from the seeds; nothing is tuned here.
with

checkpoints as not materialized (
    select * from {{ ref('int_attribution__checkpoints') }}
),

rules as (
    select
        signal_id,
        cause_id,
        evidence_family,
        threshold,
        coalesce(min_count, 1) as min_count,
        -- an empty lookback follows the project's window for the rule's kind
        coalesce(
            lookback_days,
            case window_kind
                when 'survey' then {{ var('survey_lookback_days') }}
                else {{ var('attribution_lookback_days') }}
            end
        ) as lookback_days,
        strength
    from {{ ref('signal_rules') }}
    where
        is_enabled
        and strength > 0
),

-- Every active checkpoint's windows start on or after this instant (the active
-- checkpoints share one window end), so older rows of the event sources below matter
-- only to the accounts with a defection checkpoint: the others' old rows are left out
-- before any window is paired with them.
active_reach as (
    select
        (
            select min(active.window_end_at)
            from checkpoints as active
            where active.checkpoint_kind = 'active'
        )
        - make_interval(days => (select max(rules.lookback_days) from rules)) as starts_at
),

defection_accounts as (
    select checkpoints.crm_account_id
    from checkpoints
    where checkpoints.checkpoint_kind = 'defection'
),

plan_catalog as (
    select * from {{ ref('plan_catalog') }}
),

stated_reason_map as (
    select * from {{ ref('stated_reason_map') }}
    where cause_id is not null
),

evidence_strengths as (
    select * from {{ ref('evidence_strengths') }}
    where strength > 0
),

stated_reasons as (
    select * from {{ ref('int_defection_stated_reasons') }}
),

defection_subscriptions as (
    select
        defection_id,
        subscription_id
    from {{ ref('int_defection_subscriptions') }}
),

subscriptions as (
    select
        subscription_id,
        customer_id,
        started_at,
        ended_at
    from {{ ref('stg_billing__subscriptions') }}
),

subscription_items as (
    select
        subscription_item_id,
        subscription_id,
        price_id,
        quantity,
        created_at
    from {{ ref('stg_billing__subscription_items') }}
),

-- the current version of each account, from the history already built (the staging view
-- would rank every landed version again)
accounts as (
    select
        crm_account_id as account_id,
        employee_count
    from {{ ref('int_identity__account_history') }}
    where is_current
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

-- the ticket rules that are on, with their thresholds (null when a rule is off)
ticket_thresholds as (
    select
        coalesce(bool_or(signal_id = 'product_issues_bug_volume'), false) as counts_bugs,
        coalesce(bool_or(signal_id = 'product_issues_unresolved_bug'), false)
            as counts_unresolved_bugs,
        make_interval(
            hours => (max(threshold) filter (
                where signal_id = 'slow_resolution_first_response'
            ))::int
        ) as first_response_limit,
        make_interval(
            secs => max(threshold) filter (
                where signal_id = 'slow_resolution_resolution_time'
            ) * 86400
        ) as resolution_limit,
        max(threshold) filter (where signal_id = 'poor_service_low_csat') as low_csat,
        coalesce(bool_or(signal_id = 'hassle_billing_ticket'), false) as counts_billing
    from rules
),

-- Only tickets that can qualify for a ticket rule at some checkpoint (a quarter of them
-- at 100,000 customers) are paired with the checkpoints' windows: each condition below
-- follows from the rule's condition in qualifying_tickets, where a response or a
-- resolution counts only if it came before the window end (a response still missing at
-- the window end came later, or never, so it also took longer than the threshold).
tickets as (
    select
        tickets.ticket_id,
        tickets.account_id,
        tickets.ticket_category,
        tickets.ticket_priority,
        tickets.opened_at,
        tickets.first_response_at,
        tickets.resolved_at,
        tickets.csat_score
    from {{ ref('stg_crm__tickets') }} as tickets
    where
        not coalesce(tickets.is_deleted, false)
        and (
            tickets.opened_at >= (select active_reach.starts_at from active_reach)
            or tickets.account_id in (
                select defection_accounts.crm_account_id from defection_accounts
            )
        )
        -- thresholds as scalar subqueries, computed once, so that the condition filters
        -- the scan of the tickets
        and (
            (
                (select ticket_thresholds.counts_bugs from ticket_thresholds)
                and tickets.ticket_category in ('bug', 'outage')
            )
            or (
                (select ticket_thresholds.counts_unresolved_bugs from ticket_thresholds)
                and tickets.ticket_category = 'bug'
                and tickets.ticket_priority in ('high', 'urgent')
            )
            or (
                (select ticket_thresholds.first_response_limit from ticket_thresholds)
                is not null
                and (
                    tickets.first_response_at is null
                    or tickets.first_response_at - tickets.opened_at
                    > (select ticket_thresholds.first_response_limit from ticket_thresholds)
                )
            )
            or tickets.resolved_at - tickets.opened_at
            > (select ticket_thresholds.resolution_limit from ticket_thresholds)
            or tickets.csat_score <= (select ticket_thresholds.low_csat from ticket_thresholds)
            or (
                (select ticket_thresholds.counts_billing from ticket_thresholds)
                and tickets.ticket_category = 'billing'
            )
        )
),

-- The low-usage rule fires only when each of an account's latest snapshots in the window
-- is under the threshold, so only accounts with a snapshot under it (one in thirteen at
-- 100,000 customers) have their snapshots paired with the checkpoints' windows.
low_usage_accounts as (
    select distinct snapshots.account_id
    from {{ ref('stg_crm__usage_snapshots') }} as snapshots
    inner join rules
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
        and (
            snapshot_date >= (
                select (active_reach.starts_at at time zone 'utc')::date from active_reach
            )
            or account_id in (select defection_accounts.crm_account_id from defection_accounts)
        )
        and account_id in (select low_usage_accounts.account_id from low_usage_accounts)
),

-- not materialized: each checkpoint looks up its account's last touchpoint in the
-- (account_id, occurred_at, is_deleted) index instead of joining every activity of the
-- account
activities as not materialized (
    select
        account_id,
        occurred_at
    from {{ ref('stg_crm__activities') }}
    where not coalesce(is_deleted, false)
),

survey_responses as (
    select
        response_id,
        crm_account_id,
        contact_id,
        survey_kind,
        submitted_at,
        score
    from {{ ref('int_survey__responses_matched') }}
    where
        is_matched
        and (
            submitted_at >= (select active_reach.starts_at from active_reach)
            or crm_account_id in (
                select defection_accounts.crm_account_id from defection_accounts
            )
        )
),

-- not materialized: the failed charges are read in their windows, and the charges of the
-- few refunds and disputes are looked up by charge_id, instead of copying every charge
charges as not materialized (
    select
        charge_id,
        customer_id,
        charge_status,
        failure_code,
        created_at
    from {{ ref('stg_billing__charges') }}
),

refunds as (
    select
        refunds.refund_id,
        charges.customer_id,
        refunds.amount,
        refunds.refund_reason,
        refunds.created_at
    from {{ ref('stg_billing__refunds') }} as refunds
    inner join charges
        on refunds.charge_id = charges.charge_id
),

disputes as (
    select
        disputes.dispute_id,
        charges.customer_id,
        disputes.amount,
        disputes.dispute_reason,
        disputes.dispute_status,
        disputes.created_at
    from {{ ref('stg_billing__disputes') }} as disputes
    inner join charges
        on disputes.charge_id = charges.charge_id
),

-- each rule's window at each checkpoint: [window_start_at, window_end_at). Inlined into
-- each signal below (not materialized), so the planner sees one rule's rows per signal and
-- hash-joins them to the source rows instead of scanning every window per source row.
windows as not materialized (
    select
        checkpoints.checkpoint_id,
        checkpoints.customer_id,
        checkpoints.crm_account_id,
        checkpoints.window_end_at,
        checkpoints.window_end_date,
        checkpoints.relationship_started_at,
        checkpoints.is_involuntary,
        rules.signal_id,
        rules.threshold,
        rules.min_count,
        rules.lookback_days,
        checkpoints.window_end_at - make_interval(days => rules.lookback_days)
            as window_start_at,
        checkpoints.window_end_date - rules.lookback_days as window_start_date
    from checkpoints
    cross join rules
),

-- ---------------------------------------------------------------------------- stated
stated_distinct as (
    select
        defection_id,
        reason_source,
        reason_code,
        min(stated_at) as stated_at,
        min(left(regexp_replace(comment, '\s+', ' ', 'g'), 80)) as short_comment
    from stated_reasons
    group by defection_id, reason_source, reason_code
),

stated as (
    select
        checkpoints.checkpoint_id,
        stated_reason_map.cause_id,
        'stated' as evidence_type,
        stated_distinct.reason_source as evidence_source,
        stated_distinct.reason_code,
        replace(stated_distinct.reason_source, '_', ' ') || ': ' || stated_distinct.reason_code
        || coalesce(' ("' || stated_distinct.short_comment || '")', '') as evidence_detail,
        evidence_strengths.strength,
        stated_distinct.stated_at as observed_at
    from stated_distinct
    inner join checkpoints
        on stated_distinct.defection_id = checkpoints.defection_id
    inner join stated_reason_map
        on
            stated_distinct.reason_source = stated_reason_map.reason_source
            and stated_distinct.reason_code = stated_reason_map.reason_code
    inner join evidence_strengths
        on stated_distinct.reason_source = evidence_strengths.evidence_source
),

-- -------------------------------------------------------------------------- poor_fit
-- the subscriptions that make up the relationship at the checkpoint: those that ended
-- it for a defection, those running at the window end for an active customer
checkpoint_subscriptions as (
    select
        checkpoints.checkpoint_id,
        defection_subscriptions.subscription_id
    from checkpoints
    inner join defection_subscriptions
        on checkpoints.defection_id = defection_subscriptions.defection_id
    union
    select
        checkpoints.checkpoint_id,
        subscriptions.subscription_id
    from checkpoints
    inner join subscriptions
        on
            checkpoints.customer_id = subscriptions.customer_id
            and checkpoints.window_end_at > subscriptions.started_at
            and (
                subscriptions.ended_at is null
                or checkpoints.window_end_at <= subscriptions.ended_at
            )
    where checkpoints.checkpoint_kind = 'active'
),

base_plan_items as (
    select
        checkpoint_subscriptions.checkpoint_id,
        subscription_items.subscription_item_id,
        subscription_items.quantity,
        subscription_items.created_at,
        plan_catalog.plan_name,
        plan_catalog.min_seats,
        plan_catalog.min_employees
    from checkpoint_subscriptions
    inner join subscription_items
        on checkpoint_subscriptions.subscription_id = subscription_items.subscription_id
    inner join plan_catalog
        on subscription_items.price_id = plan_catalog.price_id
    -- add-ons have no minimum
    where plan_catalog.min_seats > 0 or plan_catalog.min_employees > 0
),

poor_fit_seats as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        string_agg(
            format(
                '%s plan with %s seats (plan minimum %s)',
                base_plan_items.plan_name, base_plan_items.quantity, base_plan_items.min_seats
            ),
            '; ' order by base_plan_items.subscription_item_id
        ) as evidence_detail,
        min(base_plan_items.created_at) as observed_at,
        count(*) as item_count,
        min(windows.min_count) as min_count
    from windows
    inner join base_plan_items
        on windows.checkpoint_id = base_plan_items.checkpoint_id
    where
        windows.signal_id = 'poor_fit_seats_below_minimum'
        and base_plan_items.quantity < windows.threshold * base_plan_items.min_seats
    group by windows.checkpoint_id, windows.signal_id
),

poor_fit_size as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        string_agg(
            distinct format(
                '%s employees on the %s plan (plan minimum %s)',
                accounts.employee_count, base_plan_items.plan_name,
                base_plan_items.min_employees
            ),
            '; '
        ) as evidence_detail,
        min(base_plan_items.created_at) as observed_at,
        count(*) as item_count,
        min(windows.min_count) as min_count
    from windows
    inner join base_plan_items
        on windows.checkpoint_id = base_plan_items.checkpoint_id
    inner join accounts
        on windows.crm_account_id = accounts.account_id
    where
        windows.signal_id = 'poor_fit_size_below_minimum'
        and accounts.employee_count < windows.threshold * base_plan_items.min_employees
    group by windows.checkpoint_id, windows.signal_id
),

-- -------------------------------------------------------------------------- oversold
go_live_by_checkpoint as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.min_count,
        deals.deal_id,
        deals.promised_go_live_date,
        -- a go-live after the checkpoint had not happened yet
        case when deals.go_live_date < windows.window_end_date then deals.go_live_date end
            as go_live_date,
        (deals.promised_go_live_date + windows.threshold::int) as deadline_date,
        windows.window_end_date
    from windows
    inner join deals
        on
            windows.crm_account_id = deals.account_id
            and windows.window_end_at > deals.closed_at
    where windows.signal_id = 'oversold_go_live_late'
),

oversold as (
    select
        checkpoint_id,
        signal_id,
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
        (min(deadline_date) + 1)::timestamp at time zone 'utc' as observed_at,
        count(*) as item_count,
        min(min_count) as min_count
    from go_live_by_checkpoint
    where
        deadline_date < window_end_date
        and (go_live_date is null or go_live_date > deadline_date)
    group by checkpoint_id, signal_id
),

-- ------------------------------------------------------------------- failed_adoption
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
    where windows.signal_id = 'failed_adoption_low_usage'
),

failed_adoption as (
    select
        checkpoint_id,
        signal_id,
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
        count(*) as item_count,
        min(min_count) as min_count
    from recent_snapshots
    where recency <= min_count
    group by checkpoint_id, signal_id
    having bool_and(licensed_seats > 0 and active_users::numeric < threshold * licensed_seats)
),

-- -------------------------------------------------------------- ticket-based signals
{%- set ticket_signals -%}
    'product_issues_bug_volume', 'product_issues_unresolved_bug',
    'slow_resolution_first_response', 'slow_resolution_resolution_time',
    'poor_service_low_csat', 'hassle_billing_ticket'
{%- endset %}
window_tickets as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.threshold,
        windows.min_count,
        windows.lookback_days,
        windows.window_end_at,
        tickets.ticket_id,
        tickets.ticket_category,
        tickets.ticket_priority,
        tickets.opened_at,
        -- what was known at the checkpoint
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
            -- the longest ticket window, so the planner drops older tickets before
            -- pairing them with each rule
            and windows.window_end_at - (
                select make_interval(days => max(ticket_rules.lookback_days))
                from rules as ticket_rules
                where ticket_rules.signal_id in ({{ ticket_signals }})
            ) <= tickets.opened_at
    where windows.signal_id in ({{ ticket_signals }})
),

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
        -- resolution time only of resolved tickets (an open bug is product_issues)
        when 'slow_resolution_resolution_time'
            then resolved_at - opened_at > make_interval(secs => threshold * 86400)
        when 'poor_service_low_csat' then csat_score <= threshold
        when 'hassle_billing_ticket' then ticket_category = 'billing'
    end
),

ticket_signals as (
    select
        checkpoint_id,
        signal_id,
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
),

-- ---------------------------------------------------------------- refunds, disputes
money_items as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.min_count,
        refunds.refund_id as item_id,
        format(
            'refund %s of %s cents (%s)', refunds.refund_id, refunds.amount,
            refunds.refund_reason
        ) as item_detail,
        refunds.created_at
    from windows
    inner join refunds
        on
            windows.customer_id = refunds.customer_id
            and windows.window_start_at <= refunds.created_at
            and windows.window_end_at > refunds.created_at
    where windows.signal_id = 'hassle_refund'
    union all
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.min_count,
        disputes.dispute_id as item_id,
        format(
            'dispute %s of %s cents (%s, %s)', disputes.dispute_id, disputes.amount,
            disputes.dispute_reason, disputes.dispute_status
        ) as item_detail,
        disputes.created_at
    from windows
    inner join disputes
        on
            windows.customer_id = disputes.customer_id
            and windows.window_start_at <= disputes.created_at
            and windows.window_end_at > disputes.created_at
    where windows.signal_id = 'hassle_dispute'
    union all
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.min_count,
        charges.charge_id as item_id,
        format('charge %s failed (%s)', charges.charge_id, charges.failure_code) as item_detail,
        charges.created_at
    from windows
    inner join charges
        on
            windows.customer_id = charges.customer_id
            and charges.charge_status = 'failed'
            and windows.window_start_at <= charges.created_at
            and windows.window_end_at > charges.created_at
    where windows.signal_id = 'financial_distress_failed_payments'
),

money_signals as (
    select
        checkpoint_id,
        signal_id,
        case
            when count(*) > 1
                then format(
                    '%s %s: ', count(*),
                    case signal_id
                        when 'hassle_refund' then 'refunds'
                        when 'hassle_dispute' then 'disputes' else 'failed charges'
                    end
                )
            else ''
        end
        || string_agg(item_detail, '; ' order by created_at, item_id) as evidence_detail,
        min(created_at) as observed_at,
        count(*) as item_count,
        min(min_count) as min_count
    from money_items
    group by checkpoint_id, signal_id
),

involuntary as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        'involuntary defection: billing ended the subscription for non-payment'
            as evidence_detail,
        windows.window_end_at as observed_at,
        1 as item_count,
        windows.min_count
    from windows
    where
        windows.signal_id = 'financial_distress_involuntary'
        and windows.is_involuntary
),

-- --------------------------------------------------------------------------- neglect
recent_surveys as (
    select
        windows.checkpoint_id,
        count(*) as responses
    from windows
    inner join survey_responses
        on
            windows.crm_account_id = survey_responses.crm_account_id
            and survey_responses.survey_kind <> 'exit'
            and windows.window_start_at <= survey_responses.submitted_at
            and windows.window_end_at > survey_responses.submitted_at
    where windows.signal_id = 'neglect_no_touchpoint'
    group by windows.checkpoint_id
),

-- the checkpoints without a survey answered in the window, and only they (the survey
-- condition rules most out) look up their account's last touchpoint
silent_checkpoints as (
    select windows.*
    from windows
    left join recent_surveys
        on windows.checkpoint_id = recent_surveys.checkpoint_id
    where
        windows.signal_id = 'neglect_no_touchpoint'
        and recent_surveys.checkpoint_id is null
),

silence as (
    select
        silent_checkpoints.checkpoint_id,
        silent_checkpoints.signal_id,
        silent_checkpoints.threshold,
        silent_checkpoints.lookback_days,
        silent_checkpoints.min_count,
        last_touch.last_touch_at,
        -- silence counts from the last touchpoint, or from the start of the relationship
        greatest(last_touch.last_touch_at, silent_checkpoints.relationship_started_at)
            as silent_since,
        silent_checkpoints.window_end_at
    from silent_checkpoints
    cross join
        lateral (
            select max(activities.occurred_at) as last_touch_at
            from activities
            where
                activities.account_id = silent_checkpoints.crm_account_id
                and activities.occurred_at < silent_checkpoints.window_end_at
        ) as last_touch
),

neglect as (
    select
        checkpoint_id,
        signal_id,
        format(
            'no touchpoint for %s days (%s); no survey answered in %s days',
            extract(day from window_end_at - silent_since)::int,
            coalesce(
                'last ' || to_char(last_touch_at at time zone 'utc', 'YYYY-MM-DD'), 'none logged'
            ),
            lookback_days
        ) as evidence_detail,
        silent_since + make_interval(days => threshold::int) as observed_at,
        1 as item_count,
        min_count
    from silence
    where
        silent_since is not null
        and window_end_at - silent_since >= make_interval(days => threshold::int)
),

-- ----------------------------------------------------------------------- goals_unmet
detractors as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.min_count,
        format(
            'NPS %s from contact %s on %s', survey_responses.score,
            survey_responses.contact_id,
            to_char(survey_responses.submitted_at at time zone 'utc', 'YYYY-MM-DD')
        ) as item_detail,
        survey_responses.submitted_at,
        survey_responses.response_id
    from windows
    inner join survey_responses
        on
            windows.crm_account_id = survey_responses.crm_account_id
            and survey_responses.survey_kind = 'relationship_nps'
            and windows.threshold >= survey_responses.score
            and windows.window_start_at <= survey_responses.submitted_at
            and windows.window_end_at > survey_responses.submitted_at
    where windows.signal_id = 'goals_unmet_detractor'
),

goals_unmet as (
    select
        checkpoint_id,
        signal_id,
        string_agg(item_detail, '; ' order by submitted_at, response_id) as evidence_detail,
        min(submitted_at) as observed_at,
        count(*) as item_count,
        min(min_count) as min_count
    from detractors
    group by checkpoint_id, signal_id
),

-- -------------------------------------------------------------------------- observed
signals as (
    select * from poor_fit_seats
    union all
    select * from poor_fit_size
    union all
    select * from oversold
    union all
    select * from failed_adoption
    union all
    select * from ticket_signals
    union all
    select * from money_signals
    union all
    select * from involuntary
    union all
    select * from neglect
    union all
    select * from goals_unmet
),

families as (
    select * from {{ ref('int_attribution__evidence_families') }}
),

observed as (
    select
        signals.checkpoint_id,
        rules.cause_id,
        'observed' as evidence_type,
        signals.signal_id as evidence_source,
        null::text as reason_code,
        signals.evidence_detail,
        rules.strength,
        signals.observed_at
    from signals
    inner join rules
        on signals.signal_id = rules.signal_id
    inner join families
        on signals.checkpoint_id = families.checkpoint_id
    where
        signals.item_count >= signals.min_count
        and case rules.evidence_family
            when 'billing' then true
            when 'crm_account' then families.is_crm_linked
            when 'crm_activity' then families.has_crm_activity
            when 'support' then families.has_support
            when 'usage' then families.has_usage
            when 'survey' then families.has_survey
            else false
        end
),

unioned as (
    select * from stated
    union all
    select * from observed
),

final as (
    select
        md5(
            unioned.checkpoint_id || '|' || unioned.evidence_source || '|'
            || coalesce(unioned.reason_code, '')
        )::text as evidence_id,
        unioned.checkpoint_id::text as checkpoint_id,
        checkpoints.checkpoint_kind::text as checkpoint_kind,
        checkpoints.defection_id::text as defection_id,
        checkpoints.customer_id::text as customer_id,
        checkpoints.crm_account_id::text as crm_account_id,
        checkpoints.as_of_date::date as as_of_date,
        unioned.cause_id::text as cause_id,
        unioned.evidence_type::text as evidence_type,
        unioned.evidence_source::text as evidence_source,
        unioned.reason_code::text as reason_code,
        unioned.evidence_detail::text as evidence_detail,
        unioned.strength::numeric as strength,
        unioned.observed_at::timestamptz as observed_at
    from unioned
    inner join checkpoints
        on unioned.checkpoint_id = checkpoints.checkpoint_id
)

select * from final
