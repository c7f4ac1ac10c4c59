{{ incremental_staging_config(
    ['activity_id'], 'crm', extra_indexes=[{'columns': ['account_id', 'occurred_at']}]
) }}

with

source as (
    {{ incremental_latest_version(
        source('crm', 'activities'),
        ['activity_id'],
        'updated_at desc, _logical_date desc'
    ) }}
),

final as (
    select
        activity_id,
        account_id,
        contact_id,
        activity_type,
        occurred_at,
        created_at,
        updated_at,
        is_deleted,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
