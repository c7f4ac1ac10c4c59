-- Every flow in kpi_retention_monthly equals the sum of the matching movements in
-- fct_mrr_movements for that month, the month-end MRR and paying customers equal the
-- snapshot in fct_customer_mrr_monthly, and MRR rolls forward:
-- mrr_end = mrr_start + new + expansion - contraction - churned + reactivation.
-- Returns the months where anything disagrees.
with

movements as (
    select
        month,
        count(*) filter (where movement_category = 'churn') as churned_customers,
        coalesce(sum(mrr_delta) filter (where movement_category = 'new'), 0) as new_mrr,
        coalesce(sum(mrr_delta) filter (where movement_category = 'expansion'), 0)
            as expansion_mrr,
        coalesce(-sum(mrr_delta) filter (where movement_category = 'contraction'), 0)
            as contraction_mrr,
        coalesce(-sum(mrr_delta) filter (where movement_category = 'churn'), 0) as churned_mrr,
        coalesce(sum(mrr_delta) filter (where movement_category = 'reactivation'), 0)
            as reactivation_mrr
    from {{ ref('fct_mrr_movements') }}
    group by month
),

snapshots as (
    select
        month,
        count(*) filter (where is_active) as paying_customers,
        sum(mrr) as mrr
    from {{ ref('fct_customer_mrr_monthly') }}
    group by month
),

kpi as (
    select * from {{ ref('kpi_retention_monthly') }}
),

compared as (
    select
        kpi.month,
        kpi.churned_customers = coalesce(movements.churned_customers, 0)
        and kpi.logo_churn_rate_numerator = kpi.churned_customers
        and kpi.new_mrr = coalesce(movements.new_mrr, 0)
        and kpi.expansion_mrr = coalesce(movements.expansion_mrr, 0)
        and kpi.contraction_mrr = coalesce(movements.contraction_mrr, 0)
        and kpi.churned_mrr = coalesce(movements.churned_mrr, 0)
        and kpi.reactivation_mrr = coalesce(movements.reactivation_mrr, 0)
        and kpi.gross_mrr_churn_rate_numerator
        = coalesce(movements.churned_mrr, 0) + coalesce(movements.contraction_mrr, 0)
        and kpi.mrr_end = coalesce(current_snapshot.mrr, 0)
        and kpi.paying_customers_end = coalesce(current_snapshot.paying_customers, 0)
        and kpi.mrr_start = coalesce(previous_snapshot.mrr, 0)
        and kpi.logo_churn_rate_denominator = coalesce(previous_snapshot.paying_customers, 0)
        and kpi.mrr_end = kpi.mrr_start + kpi.new_mrr + kpi.expansion_mrr - kpi.contraction_mrr
        - kpi.churned_mrr + kpi.reactivation_mrr
            as reconciles
    from kpi
    left join movements
        on kpi.month = movements.month
    left join snapshots as current_snapshot
        on kpi.month = current_snapshot.month
    left join snapshots as previous_snapshot
        on previous_snapshot.month = (kpi.month - interval '1 month')::date
)

select *
from compared
where not reconciles
