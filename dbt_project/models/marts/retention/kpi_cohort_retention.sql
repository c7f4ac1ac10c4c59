-- Cohort retention: customers grouped by their first paying month, followed month by
-- month through the as-of month. Month 0 is the cohort month itself (everyone paying).
with

monthly as (
    select * from {{ ref('fct_customer_mrr_monthly') }}
),

-- one pass over the customer-months, grouped by the cohort each row carries; a customer's
-- months start at its cohort month, where it is counted into the cohort
cohort_months as (
    select
        cohort_month,
        month,
        (
            (extract(year from month) - extract(year from cohort_month)) * 12
            + extract(month from month) - extract(month from cohort_month)
        )::int as months_since_start,
        count(*) filter (where is_active) as active_customers,
        sum(mrr) as mrr,
        count(*) filter (where is_first_paying_month) as starting_customers,
        sum(mrr) filter (where is_first_paying_month) as starting_mrr
    from monthly
    group by cohort_month, month
),

cohort_sizes as (
    select
        cohort_month,
        sum(starting_customers) as cohort_customers,
        sum(starting_mrr) as cohort_starting_mrr
    from cohort_months
    group by cohort_month
),

final as (
    select
        cohort_months.cohort_month::date as cohort_month,
        cohort_months.months_since_start::int as months_since_start,
        cohort_months.month::date as month,  -- noqa: RF04
        cohort_sizes.cohort_customers::bigint as cohort_customers,
        cohort_months.active_customers::bigint as active_customers,
        {{ safe_ratio('cohort_months.active_customers', 'cohort_sizes.cohort_customers') }}
            as logo_retention,
        cohort_sizes.cohort_starting_mrr::bigint as cohort_starting_mrr,
        cohort_months.mrr::bigint as mrr,
        {{ safe_ratio('cohort_months.mrr', 'cohort_sizes.cohort_starting_mrr') }}
            as revenue_retention
    from cohort_months
    inner join cohort_sizes
        on cohort_months.cohort_month = cohort_sizes.cohort_month
)

select * from final
