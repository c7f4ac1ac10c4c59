with

source as (
    {{ latest_version(
        source('billing', 'disputes'),
        ['dispute_id'],
        '_logical_date desc'
    ) }}
),

final as (
    select
        dispute_id,
        charge_id,
        amount,
        currency,
        reason as dispute_reason,
        status as dispute_status,
        {{ epoch_to_timestamp('created') }} as created_at,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
)

select * from final
