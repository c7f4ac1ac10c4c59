-- Either shape of the Stripe API: from 2025-03-31.basil on the current period is kept on
-- the subscription's items (item_current_period_*: the first item's, which every item of
-- a subscription billed on one cycle shares), and from 2025-09-30.clover on a discount
-- names its coupon under source (discount_source_*).
{{ incremental_staging_config(['subscription_id']) }}

with

source as (
    {{ incremental_latest_version(
        source('billing', 'subscriptions'),
        ['subscription_id'],
        '_logical_date desc'
    ) }}
),

final as (
    select
        subscription_id,
        customer_id,
        status as subscription_status,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('start_date') }} as started_at,
        {{ epoch_to_timestamp('coalesce(current_period_start, item_current_period_start)') }}
            as current_period_start_at,
        {{ epoch_to_timestamp('coalesce(current_period_end, item_current_period_end)') }}
            as current_period_end_at,
        cancel_at_period_end as is_cancel_at_period_end,
        {{ epoch_to_timestamp('cancel_at') }} as cancel_at,
        {{ epoch_to_timestamp('canceled_at') }} as canceled_at,
        {{ epoch_to_timestamp('ended_at') }} as ended_at,
        cancellation_reason,
        cancellation_feedback,
        cancellation_comment,
        coalesce(discount_coupon_id, discount_source_coupon_id) as discount_coupon_id,
        coalesce(discount_percent_off, discount_source_percent_off) as discount_percent_off,
        coalesce(discount_amount_off, discount_source_amount_off) as discount_amount_off,
        currency,
        _batch_id as batch_id,
        _logical_date as logical_date,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
