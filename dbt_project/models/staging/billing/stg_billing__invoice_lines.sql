{{ incremental_staging_config(['invoice_line_id'], 'billing') }}

with

source as (
    {{ incremental_latest_version(
        source('billing', 'invoice_lines'),
        ['line_id'],
        '_logical_date desc'
    ) }}
),

final as (
    select
        line_id as invoice_line_id,
        invoice_id,
        subscription_id,
        price_id,
        recurring_interval,
        recurring_interval_count,
        quantity,
        amount,
        coalesce(discount_amount, 0) as discount_amount,
        {{ epoch_to_timestamp('period_start') }} as period_start_at,
        {{ epoch_to_timestamp('period_end') }} as period_end_at,
        proration as is_proration,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
