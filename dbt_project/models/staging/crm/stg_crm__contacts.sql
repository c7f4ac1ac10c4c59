with

source as (
    {{ latest_version(
        source('crm', 'contacts'),
        ['contact_id'],
        'updated_at desc, _logical_date desc'
    ) }}
),

final as (
    select
        contact_id,
        account_id,
        lower(trim(email)) as email,
        first_name,
        last_name,
        title,
        created_at,
        updated_at,
        is_deleted,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
)

select * from final
