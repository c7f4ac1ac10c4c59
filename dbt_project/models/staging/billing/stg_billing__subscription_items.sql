{{ incremental_staging_config(['subscription_item_id']) }}

with

source as (
    {{ incremental_latest_version(
        source('billing', 'subscription_items'),
        ['item_id'],
        '_logical_date desc'
    ) }}
),

final as (
    select
        item_id as subscription_item_id,
        subscription_id,
        price_id,
        product_id,
        unit_amount,
        currency,
        recurring_interval,
        recurring_interval_count,
        quantity,
        {{ epoch_to_timestamp('created') }} as created_at,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
