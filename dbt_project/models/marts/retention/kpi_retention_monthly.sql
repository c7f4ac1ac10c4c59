-- Retention and churn KPIs per calendar month, from the first month with recurring
-- revenue through the as-of month, without gaps. Every rate carries the numerator and
-- denominator it was computed from; a rate is null when its denominator is 0.
-- Paying status is a month-end snapshot, so a customer who starts and churns within one
-- month is never paying at a month end: it has a defection but no churn movement, and so
-- stays out of logo churn (the "excluding same-month starters" rule).
with

months as (
    select
        month,
        is_as_of_month
    from {{ ref('int_revenue__months') }}
),

monthly as (
    select * from {{ ref('fct_customer_mrr_monthly') }}
),

movements as (
    select * from {{ ref('fct_mrr_movements') }}
),

defections as (
    select * from {{ ref('fct_defections') }}
),

as_of as (
    select {{ as_of_date() }} as as_of_date
),

-- one pass over the customer-months: month-end paying customers and MRR, and the
-- trailing-12-month base (customers paying 12 months earlier, with what they paid then
-- and what they pay now)
month_end as (
    select
        month,
        count(*) filter (where is_active) as paying_customers,
        coalesce(sum(mrr), 0) as mrr,
        coalesce(
            sum(least(mrr, mrr_12_months_earlier)) filter (where mrr_12_months_earlier > 0), 0
        ) as grr_t12_numerator,
        coalesce(sum(mrr) filter (where mrr_12_months_earlier > 0), 0) as nrr_t12_numerator,
        coalesce(sum(mrr_12_months_earlier) filter (where mrr_12_months_earlier > 0), 0)
            as t12_starting_mrr,
        count(*) filter (where mrr_12_months_earlier > 0) as t12_starting_customers
    from monthly
    group by month
),

movement_sums as (
    select
        month,
        count(*) filter (where movement_category = 'churn') as churned_customers,
        count(*) filter (where movement_category = 'new') as new_customers,
        count(*) filter (where movement_category = 'reactivation') as reactivated_customers,
        coalesce(sum(mrr_delta) filter (where movement_category = 'new'), 0) as new_mrr,
        coalesce(sum(mrr_delta) filter (where movement_category = 'expansion'), 0)
            as expansion_mrr,
        coalesce(-sum(mrr_delta) filter (where movement_category = 'contraction'), 0)
            as contraction_mrr,
        coalesce(-sum(mrr_delta) filter (where movement_category = 'churn'), 0) as churned_mrr,
        coalesce(sum(mrr_delta) filter (where movement_category = 'reactivation'), 0)
            as reactivation_mrr
    from movements
    group by month
),

defection_sums as (
    select
        defection_month as month,  -- noqa: RF04
        count(*) as defections,
        count(*) filter (where had_feedback) as defections_with_feedback,
        count(*) filter (where has_evidence) as defections_with_evidence,
        count(*) filter (where is_won_back) as defections_won_back,
        count(*) filter (where is_involuntary) as involuntary_defections,
        coalesce(sum(lost_mrr), 0) as defections_lost_mrr
    from defections
    group by defection_month
),

joined as (
    select
        months.month,
        months.is_as_of_month,
        coalesce(previous_end.paying_customers, 0) as paying_customers_start,
        coalesce(movement_sums.new_customers, 0) as new_customers,
        coalesce(movement_sums.reactivated_customers, 0) as reactivated_customers,
        coalesce(movement_sums.churned_customers, 0) as churned_customers,
        coalesce(current_end.paying_customers, 0) as paying_customers_end,
        coalesce(previous_end.mrr, 0) as mrr_start,
        coalesce(movement_sums.new_mrr, 0) as new_mrr,
        coalesce(movement_sums.expansion_mrr, 0) as expansion_mrr,
        coalesce(movement_sums.contraction_mrr, 0) as contraction_mrr,
        coalesce(movement_sums.churned_mrr, 0) as churned_mrr,
        coalesce(movement_sums.reactivation_mrr, 0) as reactivation_mrr,
        coalesce(current_end.mrr, 0) as mrr_end,
        coalesce(current_end.grr_t12_numerator, 0) as grr_t12_numerator,
        coalesce(current_end.nrr_t12_numerator, 0) as nrr_t12_numerator,
        coalesce(current_end.t12_starting_mrr, 0) as t12_starting_mrr,
        coalesce(current_end.t12_starting_customers, 0) as t12_starting_customers,
        coalesce(defection_sums.defections, 0) as defections,
        coalesce(defection_sums.involuntary_defections, 0) as involuntary_defections,
        coalesce(defection_sums.defections_lost_mrr, 0) as defections_lost_mrr,
        coalesce(defection_sums.defections_with_feedback, 0) as defections_with_feedback,
        coalesce(defection_sums.defections_with_evidence, 0) as defections_with_evidence,
        coalesce(defection_sums.defections_won_back, 0) as defections_won_back,
        (months.month + interval '1 month')::date - 1
        + {{ var('winback_window_days') }} <= as_of.as_of_date as is_winback_window_complete
    from months
    cross join as_of
    left join month_end as previous_end
        on previous_end.month = (months.month - interval '1 month')::date
    left join month_end as current_end
        on months.month = current_end.month
    left join movement_sums
        on months.month = movement_sums.month
    left join defection_sums
        on months.month = defection_sums.month
),

final as (
    select
        month::date as month,  -- noqa: RF04
        is_as_of_month::boolean as is_as_of_month,
        paying_customers_start::bigint as paying_customers_start,
        new_customers::bigint as new_customers,
        reactivated_customers::bigint as reactivated_customers,
        churned_customers::bigint as churned_customers,
        paying_customers_end::bigint as paying_customers_end,
        churned_customers::bigint as logo_churn_rate_numerator,
        paying_customers_start::bigint as logo_churn_rate_denominator,
        {{ safe_ratio('churned_customers', 'paying_customers_start') }} as logo_churn_rate,
        mrr_start::bigint as mrr_start,
        new_mrr::bigint as new_mrr,
        expansion_mrr::bigint as expansion_mrr,
        contraction_mrr::bigint as contraction_mrr,
        churned_mrr::bigint as churned_mrr,
        reactivation_mrr::bigint as reactivation_mrr,
        mrr_end::bigint as mrr_end,
        (churned_mrr + contraction_mrr)::bigint as gross_mrr_churn_rate_numerator,
        mrr_start::bigint as gross_mrr_churn_rate_denominator,
        {{ safe_ratio('churned_mrr + contraction_mrr', 'mrr_start') }} as gross_mrr_churn_rate,
        (churned_mrr + contraction_mrr - expansion_mrr - reactivation_mrr)::bigint
            as net_mrr_churn_rate_numerator,
        mrr_start::bigint as net_mrr_churn_rate_denominator,
        {{ safe_ratio(
            'churned_mrr + contraction_mrr - expansion_mrr - reactivation_mrr', 'mrr_start'
        ) }} as net_mrr_churn_rate,
        -- as ChartMogul and Baremetrics compute it: every MRR gained over every MRR lost
        (new_mrr + expansion_mrr + reactivation_mrr)::bigint as quick_ratio_numerator,
        (churned_mrr + contraction_mrr)::bigint as quick_ratio_denominator,
        {{ safe_ratio(
            'new_mrr + expansion_mrr + reactivation_mrr', 'churned_mrr + contraction_mrr'
        ) }} as quick_ratio,
        t12_starting_customers::bigint as t12_starting_customers,
        grr_t12_numerator::bigint as grr_t12_numerator,
        t12_starting_mrr::bigint as grr_t12_denominator,
        {{ safe_ratio('grr_t12_numerator', 't12_starting_mrr') }} as grr_t12,
        nrr_t12_numerator::bigint as nrr_t12_numerator,
        t12_starting_mrr::bigint as nrr_t12_denominator,
        {{ safe_ratio('nrr_t12_numerator', 't12_starting_mrr') }} as nrr_t12,
        defections::bigint as defections,
        involuntary_defections::bigint as involuntary_defections,
        defections_lost_mrr::bigint as defections_lost_mrr,
        defections_with_feedback::bigint as defections_with_feedback,
        defections_with_feedback::bigint as feedback_coverage_numerator,
        defections::bigint as feedback_coverage_denominator,
        {{ safe_ratio('defections_with_feedback', 'defections') }} as feedback_coverage,
        defections_with_evidence::bigint as defections_with_evidence,
        defections_with_evidence::bigint as evidence_coverage_numerator,
        defections::bigint as evidence_coverage_denominator,
        {{ safe_ratio('defections_with_evidence', 'defections') }} as evidence_coverage,
        defections_won_back::bigint as defections_won_back,
        defections_won_back::bigint as win_back_rate_numerator,
        defections::bigint as win_back_rate_denominator,
        {{ safe_ratio('defections_won_back', 'defections') }} as win_back_rate,
        is_winback_window_complete::boolean as is_winback_window_complete
    from joined
)

select * from final
