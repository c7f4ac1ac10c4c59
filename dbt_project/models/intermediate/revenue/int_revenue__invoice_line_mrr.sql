-- Recurring invoice lines with their amount net of discounts normalised to a year and to
-- one month, converted from the invoice's currency to the reporting currency at the rate
-- of the month the line's service period starts (seed fx_rates_monthly). This is the one
-- place money is converted: every MRR downstream is in the reporting currency. The
-- billed amounts and currency stay on the row; a line whose rate is missing keeps a null
-- fx_rate and null converted amounts, and the build quality gate fails on it, naming the
-- currency and month.
-- Proration lines, one-off lines and voided invoices carry no MRR.
{%- set reporting = reporting_currency() %}
with

lines as (
    select * from {{ ref('stg_billing__invoice_lines') }}
),

invoices as (
    select
        invoice_id,
        customer_id,
        invoice_status,
        lower(currency) as currency
    from {{ ref('stg_billing__invoices') }}
),

-- value of one unit of each currency in the seed's base currency, per month
fx_rates as (
    select
        month,
        lower(currency) as currency,
        rate_to_base
    from {{ ref('fx_rates_monthly') }}
),

subscriptions as (
    select
        subscription_id,
        ended_at
    from {{ ref('int_revenue__subscriptions') }}
),

recurring as (
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
        invoices.currency,
        date_trunc('month', lines.period_start_at at time zone 'utc')::date as fx_month
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
),

-- minor units of the reporting currency per minor unit of the billed currency; 1 for a
-- line billed in the reporting currency, null when either rate of the month is missing
converted as (
    select
        recurring.*,
        case
            when recurring.currency = '{{ reporting }}' then 1::numeric
            else
                billed_rate.rate_to_base / nullif(reporting_rate.rate_to_base, 0)
                * power(
                    10::numeric,
                    {{ currency_decimals("'" ~ reporting ~ "'") }}
                    - {{ currency_decimals('recurring.currency') }}
                )
        end as fx_rate
    from recurring
    left join fx_rates as billed_rate
        on
            recurring.currency = billed_rate.currency
            and recurring.fx_month = billed_rate.month
    left join fx_rates as reporting_rate
        on
            reporting_rate.currency = '{{ reporting }}'
            and recurring.fx_month = reporting_rate.month
),

final as (
    select
        invoice_line_id,
        invoice_id,
        invoice_status,
        customer_id,
        subscription_id,
        price_id,
        recurring_interval,
        recurring_interval_count,
        quantity,
        period_start_at,
        period_end_at,
        subscription_ended_at,
        amount,
        discount_amount,
        net_amount,
        currency,
        fx_month,
        '{{ reporting }}'::text as reporting_currency,
        fx_rate,
        {{ annualised_amount('net_amount', 'recurring_interval',
                             'coalesce(recurring_interval_count, 1)') }} * fx_rate
            as annualised_amount,
        {{ annualised_amount('net_amount', 'recurring_interval',
                             'coalesce(recurring_interval_count, 1)') }} * fx_rate / 12 as mrr
    from converted
)

select * from final
