-- Calendar months (UTC) from the first month with recurring revenue to the as-of month,
-- each with the instant its MRR snapshot describes: the end of the month, or the end of
-- the as-of date for the as-of month.
with

lines as (
    select min(period_start_at) as first_period_start_at
    from {{ ref('int_revenue__invoice_line_mrr') }}
),

as_of as (
    select
        {{ as_of_date() }} as as_of_date,
        {{ as_of_end_at() }} as as_of_end_at
),

spine as (
    select
        generate_series(
            date_trunc('month', lines.first_period_start_at at time zone 'utc'),
            date_trunc('month', as_of.as_of_date::timestamp),
            interval '1 month'
        )::date as month  -- noqa: RF04
    from lines
    cross join as_of
    where lines.first_period_start_at is not null
),

final as (
    select
        spine.month,
        least(
            (spine.month + interval '1 month') at time zone 'utc',
            as_of.as_of_end_at
        ) as snapshot_at,
        (spine.month + interval '1 month')::date >= as_of.as_of_date + 1 as is_as_of_month
    from spine
    cross join as_of
)

select * from final
