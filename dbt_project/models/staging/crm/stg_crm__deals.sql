with

source as (
    {{ latest_version(
        source('crm', 'deals'),
        ['deal_id'],
        'updated_at desc, _logical_date desc'
    ) }}
),

final as (
    select
        deal_id,
        account_id,
        stage as deal_stage,
        amount as deal_amount,
        seats_sold,
        promised_go_live_date,
        go_live_date,
        closed_at,
        created_at,
        updated_at,
        is_deleted,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
)

select * from final
