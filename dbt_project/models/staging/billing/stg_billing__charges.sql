{{ incremental_staging_config(
    ['charge_id'], extra_indexes=[{'columns': ['invoice_id']}]
) }}

with

source as (
    {{ incremental_latest_version(
        source('billing', 'charges'),
        ['charge_id'],
        '_logical_date desc'
    ) }}
),

final as (
    select
        charge_id,
        customer_id,
        invoice_id,
        amount,
        currency,
        status as charge_status,
        failure_code,
        refunded as is_refunded,
        amount_refunded,
        disputed as is_disputed,
        {{ epoch_to_timestamp('created') }} as created_at,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
