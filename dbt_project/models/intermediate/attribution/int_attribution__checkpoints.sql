-- The moments at which causes are looked for, by checkpoint_kind:
--   defection  every defection, as of its defection date;
--   stayer     the customers who stayed, matched to each defection and judged as of its
--              moment (int_attribution__stayer_checkpoints): the comparison that tells
--              how well a signal separates leavers from stayers;
--   active     every customer paying in the as-of month, as of the as-of date;
--   backtest   every customer paying at the month ends 3 and 6 months before the as-of
--              date (backtest_months_back), as of that day: the at-risk list as it would
--              have looked then, to check against who actually left.
-- Every kind is judged by the same rules; only the window end differs.
with

defections as (
    select * from {{ ref('int_defections') }}
),

mrr_monthly as (
    select * from {{ ref('int_revenue__customer_mrr_monthly') }}
),

customers as (
    select
        customer_id,
        crm_account_id
    from {{ ref('stg_billing__customers') }}
),

subscriptions as (
    select
        customer_id,
        started_at
    from {{ ref('stg_billing__subscriptions') }}
),

stayers as (
    select * from {{ ref('int_attribution__stayer_checkpoints') }}
),

account_history as (
    select * from {{ ref('int_identity__account_history') }}
),

as_of as (
    select {{ as_of_date() }} as as_of_date
),

-- the days paying customers are scored at: the as-of date, and for the backtest the last
-- month end at least N months before it
score_dates as (
    select
        'active' as checkpoint_kind,
        as_of.as_of_date
    from as_of
    union all
    select
        'backtest' as checkpoint_kind,
        (
            date_trunc('month', as_of.as_of_date + 1 - make_interval(months => months_back.n))
            - interval '1 day'
        )::date as as_of_date
    from as_of
    cross join unnest(array{{ var('backtest_months_back') }}) as months_back (n)
),

defection_checkpoints as (
    select
        defections.defection_id as checkpoint_id,
        'defection' as checkpoint_kind,
        defections.defection_id,
        defections.customer_id,
        defections.crm_account_id,
        defections.defection_date as as_of_date,
        -- events strictly before the defection date's end of relationship count
        defections.defected_at as window_end_at,
        defections.defection_date as window_end_date,
        defections.spell_started_at as relationship_started_at,
        defections.is_involuntary,
        defections.lost_mrr::numeric as mrr,
        null::text as matched_defection_id
    from defections
),

stayer_checkpoints as (
    select
        stayers.checkpoint_id,
        'stayer' as checkpoint_kind,
        null::text as defection_id,
        stayers.customer_id,
        stayers.crm_account_id,
        stayers.as_of_date,
        stayers.window_end_at,
        stayers.window_end_date,
        stayers.relationship_started_at,
        false as is_involuntary,
        null::numeric as mrr,
        stayers.matched_defection_id
    from stayers
),

paying as (
    select
        score_dates.checkpoint_kind,
        score_dates.as_of_date,
        mrr_monthly.customer_id,
        sum(mrr_monthly.mrr) as mrr
    from mrr_monthly
    inner join score_dates
        on mrr_monthly.month = date_trunc('month', score_dates.as_of_date)::date
    group by score_dates.checkpoint_kind, score_dates.as_of_date, mrr_monthly.customer_id
    having sum(mrr_monthly.mrr) > 0
),

-- every customer paying now; for the backtest at most backtest_max_customers of those
-- paying then, in a fixed pseudo-random order (a stable hash of the customer id; at
-- 100,000 customers the backtest would otherwise double the checkpoints judged each night)
active_customers as (
    select *
    from (
        select
            paying.*,
            row_number() over (
                partition by paying.checkpoint_kind, paying.as_of_date
                order by hashtextextended(paying.customer_id, 0), paying.customer_id
            ) as draw
        from paying
    ) as drawn
    where
        checkpoint_kind = 'active'
        or draw <= {{ var('backtest_max_customers') }}
),

last_defection as (
    select
        active_customers.checkpoint_kind,
        active_customers.as_of_date,
        active_customers.customer_id,
        max(defections.defected_at) as last_defected_at
    from active_customers
    inner join defections
        on
            active_customers.customer_id = defections.customer_id
            and active_customers.as_of_date >= defections.defection_date
    group by
        active_customers.checkpoint_kind, active_customers.as_of_date,
        active_customers.customer_id
),

-- the running relationship started with the first subscription after the customer's last
-- defection before the scoring day
current_relationship as (
    select
        active_customers.checkpoint_kind,
        active_customers.as_of_date,
        active_customers.customer_id,
        min(subscriptions.started_at) as relationship_started_at
    from active_customers
    inner join subscriptions
        on active_customers.customer_id = subscriptions.customer_id
    left join last_defection
        on
            active_customers.checkpoint_kind = last_defection.checkpoint_kind
            and active_customers.as_of_date = last_defection.as_of_date
            and active_customers.customer_id = last_defection.customer_id
    where
        last_defection.last_defected_at is null
        or subscriptions.started_at >= last_defection.last_defected_at
    group by
        active_customers.checkpoint_kind, active_customers.as_of_date,
        active_customers.customer_id
),

active_checkpoints as (
    select
        md5(
            active_customers.checkpoint_kind
            || '|'
            || active_customers.customer_id
            || '|'
            || to_char(active_customers.as_of_date, 'YYYY-MM-DD')
        )
            as checkpoint_id,
        active_customers.checkpoint_kind,
        null::text as defection_id,
        active_customers.customer_id,
        customers.crm_account_id,
        active_customers.as_of_date,
        -- the whole day counts
        ((active_customers.as_of_date + 1)::timestamp at time zone 'utc') as window_end_at,
        active_customers.as_of_date + 1 as window_end_date,
        current_relationship.relationship_started_at,
        false as is_involuntary,
        active_customers.mrr::numeric as mrr,
        null::text as matched_defection_id
    from active_customers
    left join customers
        on active_customers.customer_id = customers.customer_id
    left join current_relationship
        on
            active_customers.checkpoint_kind = current_relationship.checkpoint_kind
            and active_customers.as_of_date = current_relationship.as_of_date
            and active_customers.customer_id = current_relationship.customer_id
),

unioned as (
    select * from defection_checkpoints
    union all
    select * from stayer_checkpoints
    union all
    select * from active_checkpoints
),

-- the account's segment at the checkpoint (the lift is also read per segment)
segmented as (
    select
        unioned.*,
        coalesce(account_history.segment, 'unknown') as segment
    from unioned
    left join account_history
        on
            unioned.crm_account_id = account_history.crm_account_id
            and unioned.window_end_at >= account_history.valid_from
            and unioned.window_end_at < account_history.valid_to
),

final as (
    select
        checkpoint_id::text as checkpoint_id,
        checkpoint_kind::text as checkpoint_kind,
        defection_id::text as defection_id,
        customer_id::text as customer_id,
        crm_account_id::text as crm_account_id,
        as_of_date::date as as_of_date,
        window_end_at::timestamptz as window_end_at,
        window_end_date::date as window_end_date,
        relationship_started_at::timestamptz as relationship_started_at,
        is_involuntary::boolean as is_involuntary,
        mrr::numeric as mrr,
        matched_defection_id::text as matched_defection_id,
        segment::text as segment
    from segmented
)

select * from final
