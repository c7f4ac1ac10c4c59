{{ incremental_staging_config(['subscription_id'], 'billing') }}

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
        {{ epoch_to_timestamp('current_period_start') }} as current_period_start_at,
        {{ epoch_to_timestamp('current_period_end') }} as current_period_end_at,
        cancel_at_period_end as is_cancel_at_period_end,
        {{ epoch_to_timestamp('cancel_at') }} as cancel_at,
        {{ epoch_to_timestamp('canceled_at') }} as canceled_at,
        {{ epoch_to_timestamp('ended_at') }} as ended_at,
        cancellation_reason,
        cancellation_feedback,
        cancellation_comment,
        discount_coupon_id,
        discount_percent_off,
        discount_amount_off,
        currency,
        _batch_id as batch_id,
        _logical_date as logical_date,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
),

changed as (
    {{ only_changed_rows('final', ['subscription_id']) }}
)

select * from changed
