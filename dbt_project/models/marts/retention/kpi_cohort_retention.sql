-- Cohort retention: customers grouped by their first paying month, followed month by
-- month through the as-of month. Month 0 is the cohort month itself (everyone paying).
with

-- not materialized (it is read twice): the window below then reads the table in the
-- order of its (customer_id, month) index instead of sorting it
monthly as not materialized (
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

-- every customer-month with the customer's cohort: its first row, as a customer's months
-- start at the first paying month (read in the order of the (customer_id, month) index,
-- without joining the cohorts back)
with_cohort as (
    select
        month,
        mrr,
        is_active,
        first_value(month) over customer_months as cohort_month
    from monthly
    window customer_months as (partition by customer_id order by month)
),

cohort_months as (
    select
        cohort_month,
        (
            (extract(year from month) - extract(year from cohort_month)) * 12
            + extract(month from month) - extract(month from cohort_month)
        )::int as months_since_start,
        month,
        count(*) filter (where is_active) as active_customers,
        sum(mrr) as mrr
    from with_cohort
    group by cohort_month, month
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
