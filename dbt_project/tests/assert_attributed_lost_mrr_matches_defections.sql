-- Per defection month, lost MRR spread over causes and segments in mart_cause_attribution
-- adds up to the lost MRR of that month's defections in int_defections, exactly; and so
-- do the attributed defections to the number of defections.
with

defections as (
    select
        defection_month,
        count(*) as defections,
        sum(lost_mrr) as lost_mrr
    from {{ ref('int_defections') }}
    group by defection_month
),

attributed as (
    select
        defection_month,
        sum(defections_attributed) as defections_attributed,
        sum(lost_mrr_attributed) as lost_mrr_attributed
    from {{ ref('mart_cause_attribution') }}
    group by defection_month
)

select
    coalesce(defections.defection_month, attributed.defection_month) as defection_month,
    defections.defections,
    attributed.defections_attributed,
    defections.lost_mrr,
    attributed.lost_mrr_attributed
from defections
full outer join attributed
    on defections.defection_month = attributed.defection_month
where
    attributed.lost_mrr_attributed is distinct from defections.lost_mrr
    or attributed.defections_attributed is distinct from defections.defections
