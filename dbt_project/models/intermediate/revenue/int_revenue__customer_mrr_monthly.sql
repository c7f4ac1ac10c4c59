-- MRR of every customer with recurring revenue in every month, before the months
-- without revenue are filled in: the lines whose service period covers the month's
-- snapshot instant, of subscriptions not ended by then, rounded to whole cents per
-- customer and month.
with

months as (
    select * from {{ ref('int_revenue__months') }}
),

lines as (
    select * from {{ ref('int_revenue__invoice_line_mrr') }}
),

covering as (
    select
        lines.customer_id,
        months.month,
        lines.subscription_id,
        lines.annualised_amount
    from months
    inner join lines
        on
            months.snapshot_at > lines.period_start_at
            and months.snapshot_at <= lines.period_end_at
            and (
                lines.subscription_ended_at is null
                or months.snapshot_at <= lines.subscription_ended_at
            )
),

final as (
    select
        customer_id,
        month,
        {{ mrr_from_annualised('annualised_amount') }} as mrr,
        count(distinct subscription_id)::int as subscription_count
    from covering
    group by customer_id, month
)

select * from final
