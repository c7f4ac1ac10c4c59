-- Either shape of the Stripe API: before 2025-03-31.basil a line carries its subscription,
-- price (with its recurring interval) and proration flag at the top; from basil on the
-- subscription and proration flag are under parent.subscription_item_details
-- (parent_subscription_id, parent_proration), the price id under pricing.price_details
-- (pricing_price_id), and the interval comes from the price (stg_billing__prices).
{{ incremental_staging_config(['invoice_line_id']) }}

with

source as (
    {{ incremental_latest_version(
        source('billing', 'invoice_lines'),
        ['line_id'],
        '_logical_date desc'
    ) }}
),

prices as (
    select
        price_id,
        recurring_interval,
        recurring_interval_count
    from {{ ref('stg_billing__prices') }}
),

final as (
    select
        source.line_id as invoice_line_id,
        source.invoice_id,
        coalesce(source.subscription_id, source.parent_subscription_id) as subscription_id,
        coalesce(source.price_id, source.pricing_price_id) as price_id,
        case
            when source.price_id is not null then source.recurring_interval
            else prices.recurring_interval
        end as recurring_interval,
        case
            when source.price_id is not null then source.recurring_interval_count
            else prices.recurring_interval_count
        end as recurring_interval_count,
        source.quantity,
        source.amount,
        coalesce(source.discount_amount, 0) as discount_amount,
        {{ epoch_to_timestamp('source.period_start') }} as period_start_at,
        {{ epoch_to_timestamp('source.period_end') }} as period_end_at,
        coalesce(source.proration, source.parent_proration) as is_proration,
        source._batch_id as batch_id,
        source._loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
    left join prices
        on source.price_id is null and source.pricing_price_id = prices.price_id
)

select * from final
