-- Either shape of the Stripe API: before 2025-03-31.basil an invoice names its
-- subscription at the top (subscription_id), from basil on under parent.subscription_details
-- (parent_subscription_id).
{{ incremental_staging_config(
    ['invoice_id'], extra_indexes=[{'columns': ['subscription_id']}]
) }}

with

source as (
    {{ incremental_latest_version(
        source('billing', 'invoices'),
        ['invoice_id'],
        '_logical_date desc'
    ) }}
),

final as (
    select
        invoice_id,
        customer_id,
        coalesce(subscription_id, parent_subscription_id) as subscription_id,
        status as invoice_status,
        billing_reason,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('period_start') }} as period_start_at,
        {{ epoch_to_timestamp('period_end') }} as period_end_at,
        subtotal,
        total,
        amount_due,
        amount_paid,
        attempt_count,
        currency,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
