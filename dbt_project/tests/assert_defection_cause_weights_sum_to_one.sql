-- Every defection is fully attributed: its cause weights sum to exactly 1 (no more, no
-- less, and a defection without rows fails too).
with

defections as (
    select defection_id from {{ ref('int_defections') }}
),

weights as (
    select
        defection_id,
        sum(weight) as total_weight,
        count(*) as causes
    from {{ ref('fct_defection_causes') }}
    group by defection_id
)

select
    coalesce(defections.defection_id, weights.defection_id) as defection_id,
    weights.total_weight,
    weights.causes
from defections
full outer join weights
    on defections.defection_id = weights.defection_id
where
    weights.total_weight is distinct from 1
    or defections.defection_id is null
