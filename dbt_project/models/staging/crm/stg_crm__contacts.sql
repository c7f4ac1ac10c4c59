{{ incremental_staging_config(['contact_id']) }}

with

source as (
    {{ incremental_latest_version(
        source('crm', 'contacts'),
        ['contact_id'],
        'updated_at desc, _logical_date desc'
    ) }}
),

final as (
    select
        contact_id,
        account_id,
        -- personal data leaves raw only as keyed pseudonyms (equal inputs still match)
        {{ pseudonymize('lower(trim(email))') }} as email_hash,
        {{ pseudonymize('first_name') }} as first_name_hash,
        {{ pseudonymize('last_name') }} as last_name_hash,
        title,
        created_at,
        updated_at,
        is_deleted,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
