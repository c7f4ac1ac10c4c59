{{ incremental_staging_config(['account_id', 'snapshot_date']) }}

with

source as (
    {{ incremental_latest_version(
        source('crm', 'usage_snapshots'),
        ['account_id', 'snapshot_date'],
        'updated_at desc, _logical_date desc'
    ) }}
),

final as (
    select
        account_id,
        snapshot_date,
        active_users,
        licensed_seats,
        created_at,
        updated_at,
        is_deleted,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
