{{ incremental_staging_config(['customer_id']) }}

with

source as (
    {{ incremental_latest_version(
        source('billing', 'customers'),
        ['customer_id'],
        '_logical_date desc'
    ) }}
),

final as (
    select
        customer_id,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ pseudonymize('lower(trim(email))') }} as email_hash,
        {{ pseudonymize('name') }} as customer_name_hash,
        nullif(trim(crm_account_id), '') as crm_account_id,
        currency,
        delinquent as is_delinquent,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
