-- Prices as listed at /v1/prices (every night in full). From Stripe API 2025-03-31.basil
-- on, an invoice line names its price (pricing.price_details.price) but no longer carries
-- the price's recurring interval: stg_billing__invoice_lines takes it from here.
with

source as (
    {{ latest_version(
        source('billing', 'prices'),
        ['price_id'],
        '_logical_date desc'
    ) }}
),

final as (
    select
        price_id,
        product_id,
        unit_amount,
        currency,
        recurring_interval,
        recurring_interval_count,
        {{ epoch_to_timestamp('created') }} as created_at,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
)

select * from final
