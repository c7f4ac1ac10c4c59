-- The moments at which causes are looked for: every defection (as of its defection date)
-- and every customer paying in the as-of month (as of the as-of date). Attribution and
-- the at-risk list evaluate the same rules at these checkpoints; only the window end
-- differs.
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

as_of as (
    select {{ as_of_date() }} as as_of_date
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
        defections.lost_mrr::numeric as mrr
    from defections
),

active_customers as (
    select
        mrr_monthly.customer_id,
        sum(mrr_monthly.mrr) as mrr
    from mrr_monthly
    cross join as_of
    where mrr_monthly.month = date_trunc('month', as_of.as_of_date)::date
    group by mrr_monthly.customer_id
    having sum(mrr_monthly.mrr) > 0
),

last_defection as (
    select
        defections.customer_id,
        max(defections.defected_at) as last_defected_at
    from defections
    cross join as_of
    where defections.defection_date <= as_of.as_of_date
    group by defections.customer_id
),

-- the running relationship started with the first subscription after the last defection
current_relationship as (
    select
        active_customers.customer_id,
        min(subscriptions.started_at) as relationship_started_at
    from active_customers
    inner join subscriptions
        on active_customers.customer_id = subscriptions.customer_id
    left join last_defection
        on active_customers.customer_id = last_defection.customer_id
    where
        last_defection.last_defected_at is null
        or subscriptions.started_at >= last_defection.last_defected_at
    group by active_customers.customer_id
),

active_checkpoints as (
    select
        md5(
            'active|'
            || active_customers.customer_id
            || '|'
            || to_char(as_of.as_of_date, 'YYYY-MM-DD')
        )
            as checkpoint_id,
        'active' as checkpoint_kind,
        null::text as defection_id,
        active_customers.customer_id,
        customers.crm_account_id,
        as_of.as_of_date,
        -- the whole as-of day counts
        ((as_of.as_of_date + 1)::timestamp at time zone 'utc') as window_end_at,
        as_of.as_of_date + 1 as window_end_date,
        current_relationship.relationship_started_at,
        false as is_involuntary,
        active_customers.mrr::numeric as mrr
    from active_customers
    cross join as_of
    left join customers
        on active_customers.customer_id = customers.customer_id
    left join current_relationship
        on active_customers.customer_id = current_relationship.customer_id
),

unioned as (
    select * from defection_checkpoints
    union all
    select * from active_checkpoints
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
        mrr::numeric as mrr
    from unioned
)

select * from final
