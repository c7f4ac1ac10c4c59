-- depends_on: {{ ref('int_revenue__changed_customers') }}
{{ customer_incremental_config(['customer_id', 'month'], 'month') }}

-- MRR of every customer with recurring revenue in every month, before the months
-- without revenue are filled in: the lines whose service period covers the month's
-- snapshot instant, of subscriptions not ended by then, rounded to whole cents per
-- customer and month.
with

months as (
    select * from {{ ref('int_revenue__months') }}
),

-- not materialized: each of the two branches below reads the table with its own filter
lines as not materialized (
    select * from {{ ref('int_revenue__invoice_line_mrr') }}
),

-- A build recomputes every month of the customers logged as changed, and the months
-- whose snapshot was not final yet for everyone else (two joins, so each can use a
-- narrow side; from scratch, the second is empty).
changed_lines as (
    select * from lines
    where {{ is_recomputed('lines.customer_id') }}
),

recent_months as (
    select * from months
    where {{ month_is_recomputed('months.month') }}
),

-- a line that ended before the earliest recomputed snapshot covers none of them; the
-- bound is one value, so the table is filtered once instead of per month
other_lines as (
    select * from lines
    where
        not {{ is_recomputed('customer_id') }}
        and period_end_at >= (
            select min(recent_months.snapshot_at) from recent_months
        )
),

covering as (
    select
        changed_lines.customer_id,
        months.month,
        changed_lines.subscription_id,
        changed_lines.annualised_amount
    from months
    inner join changed_lines
        on
            months.snapshot_at > changed_lines.period_start_at
            and months.snapshot_at <= changed_lines.period_end_at
            and (
                changed_lines.subscription_ended_at is null
                or months.snapshot_at <= changed_lines.subscription_ended_at
            )
    union all
    select
        other_lines.customer_id,
        recent_months.month,
        other_lines.subscription_id,
        other_lines.annualised_amount
    from recent_months
    inner join other_lines
        on
            recent_months.snapshot_at > other_lines.period_start_at
            and recent_months.snapshot_at <= other_lines.period_end_at
            and (
                other_lines.subscription_ended_at is null
                or recent_months.snapshot_at <= other_lines.subscription_ended_at
            )
),

final as (
    select
        customer_id,
        month,
        {{ mrr_from_annualised('annualised_amount') }} as mrr,
        count(distinct subscription_id)::int as subscription_count,
        {{ build_stamp() }} as built_at
    from covering
    group by customer_id, month
)

select * from final
