with

source as (
    {{ latest_version(
        source('crm', 'accounts'),
        ['account_id'],
        'updated_at desc, _logical_date desc'
    ) }}
),

final as (
    select
        account_id,
        name as account_name,
        domain,
        industry,
        employee_count,
        segment,
        region,
        owner_name,
        created_at,
        updated_at,
        is_deleted,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
)

select * from final
