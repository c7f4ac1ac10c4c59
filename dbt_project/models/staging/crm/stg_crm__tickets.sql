{{ incremental_staging_config(['ticket_id']) }}

with

source as (
    {{ incremental_latest_version(
        source('crm', 'tickets'),
        ['ticket_id'],
        'updated_at desc, _logical_date desc'
    ) }}
),

final as (
    select
        ticket_id,
        account_id,
        contact_id,
        category as ticket_category,
        priority as ticket_priority,
        status as ticket_status,
        opened_at,
        first_response_at,
        resolved_at,
        csat_score,
        created_at,
        updated_at,
        is_deleted,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
