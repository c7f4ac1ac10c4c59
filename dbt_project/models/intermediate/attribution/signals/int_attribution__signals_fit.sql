-- Fit family (poor_fit): a customer on a plan made for bigger customers, by seats or by
-- company size, against the minimums of the seed plan_catalog. These rules judge the
-- relationship as it stands at the checkpoint, so their lookback plays no part.
with

checkpoints as (
    select * from {{ ref('int_attribution__checkpoints') }}
),

windows as (
    select * from {{ ref('int_attribution__checkpoint_windows') }}
    where signal_id in ('poor_fit_seats_below_minimum', 'poor_fit_size_below_minimum')
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

plan_catalog as (
    select * from {{ ref('plan_catalog') }}
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

-- the plan items below a rule's minimum, each named as its rule reads it
fit_items as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.min_count,
        base_plan_items.subscription_item_id,
        base_plan_items.created_at,
        case windows.signal_id
            when 'poor_fit_seats_below_minimum'
                then format(
                    '%s plan with %s seats (plan minimum %s)',
                    base_plan_items.plan_name, base_plan_items.quantity,
                    base_plan_items.min_seats
                )
            when 'poor_fit_size_below_minimum'
                then format(
                    '%s employees on the %s plan (plan minimum %s)',
                    accounts.employee_count, base_plan_items.plan_name,
                    base_plan_items.min_employees
                )
        end as item_detail
    from windows
    inner join base_plan_items
        on windows.checkpoint_id = base_plan_items.checkpoint_id
    left join accounts
        on
            windows.signal_id = 'poor_fit_size_below_minimum'
            and windows.crm_account_id = accounts.account_id
    where case windows.signal_id
        when 'poor_fit_seats_below_minimum'
            then base_plan_items.quantity < windows.threshold * base_plan_items.min_seats
        -- an account the CRM does not hold has no size to judge
        when 'poor_fit_size_below_minimum'
            then accounts.employee_count < windows.threshold * base_plan_items.min_employees
    end
),

final as (
    select
        checkpoint_id,
        signal_id as evidence_source,
        null::text as reason_code,
        case signal_id
            -- the company has one size, so items of the same plan read the same: once each
            when 'poor_fit_size_below_minimum' then string_agg(distinct item_detail, '; ')
            else string_agg(item_detail, '; ' order by subscription_item_id)
        end as evidence_detail,
        min(created_at) as observed_at,
        count(*) as item_count,
        min(min_count) as min_count
    from fit_items
    group by checkpoint_id, signal_id
)

select * from final
