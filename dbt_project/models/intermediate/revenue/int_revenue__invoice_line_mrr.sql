-- depends_on: {{ ref('int_revenue__changed_customers') }}
{{ customer_incremental_config(['invoice_line_id']) }}

-- Recurring invoice lines with their amount net of discounts normalised to a year and to
-- one month.
-- Proration lines, one-off lines and voided invoices carry no MRR.
with

lines as (
    select * from {{ ref('stg_billing__invoice_lines') }}
),

invoices as (
    select
        invoice_id,
        customer_id,
        invoice_status
    from {{ ref('stg_billing__invoices') }}
),

subscriptions as (
    select
        subscription_id,
        ended_at
    from {{ ref('int_revenue__subscriptions') }}
),

final as (
    select
        lines.invoice_line_id,
        lines.invoice_id,
        invoices.invoice_status,
        invoices.customer_id,
        lines.subscription_id,
        lines.price_id,
        lines.recurring_interval,
        lines.recurring_interval_count,
        lines.quantity,
        lines.period_start_at,
        lines.period_end_at,
        subscriptions.ended_at as subscription_ended_at,
        lines.amount,
        lines.discount_amount,
        lines.amount - lines.discount_amount as net_amount,
        {{ annualised_amount('lines.amount - lines.discount_amount', 'lines.recurring_interval',
                             'coalesce(lines.recurring_interval_count, 1)') }} as annualised_amount,
        {{ annualised_amount('lines.amount - lines.discount_amount', 'lines.recurring_interval',
                             'coalesce(lines.recurring_interval_count, 1)') }} / 12 as mrr,
        {{ build_stamp() }} as built_at
    from lines
    inner join invoices
        on lines.invoice_id = invoices.invoice_id
    -- only paid subscriptions carry MRR
    inner join subscriptions
        on lines.subscription_id = subscriptions.subscription_id
    where
        not coalesce(lines.is_proration, false)
        and lines.recurring_interval is not null
        and coalesce(invoices.invoice_status, '') <> 'void'
        and {{ is_recomputed('invoices.customer_id') }}
)

select * from final
