-- Cohort retention: customers grouped by their first paying month, followed month by
-- month through the as-of month. Month 0 is the cohort month itself (everyone paying).
with

monthly as (
    select * from {{ ref('fct_customer_mrr_monthly') }}
),

cohorts as (
    select
        customer_id,
        month as cohort_month,
        mrr as starting_mrr
    from monthly
    where is_first_paying_month
),

cohort_sizes as (
    select
        cohort_month,
        count(*) as cohort_customers,
        sum(starting_mrr) as cohort_starting_mrr
    from cohorts
    group by cohort_month
),

cohort_months as (
    select
        cohorts.cohort_month,
        (
            (extract(year from monthly.month) - extract(year from cohorts.cohort_month)) * 12
            + extract(month from monthly.month) - extract(month from cohorts.cohort_month)
        )::int as months_since_start,
        monthly.month,
        count(*) filter (where monthly.is_active) as active_customers,
        sum(monthly.mrr) as mrr
    from cohorts
    inner join monthly
        on cohorts.customer_id = monthly.customer_id
    group by cohorts.cohort_month, monthly.month
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
