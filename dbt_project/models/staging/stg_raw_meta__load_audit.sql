with

source as (
    select * from {{ source('raw_meta', 'load_audit') }}
),

final as (
    select
        load_id,
        batch_id,
        source as source_name,
        entity,
        logical_date,
        rows_loaded,
        rows_replaced,
        status as load_status,
        loaded_at
    from source
)

select * from final
