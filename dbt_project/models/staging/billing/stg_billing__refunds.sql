with

source as (
    {{ latest_version(
        source('billing', 'refunds'),
        ['refund_id'],
        '_logical_date desc'
    ) }}
),

final as (
    select
        refund_id,
        charge_id,
        amount,
        currency,
        reason as refund_reason,
        status as refund_status,
        {{ epoch_to_timestamp('created') }} as created_at,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
)

select * from final
