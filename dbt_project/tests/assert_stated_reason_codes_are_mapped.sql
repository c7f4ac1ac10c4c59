-- Warns about stated reason codes the mapping seed does not know (e.g. a new exit-survey
-- option): they are dropped from attribution until stated_reason_map lists them (with an
-- empty cause_id when they name no cause).
{{ config(severity='warn') }}

with

stated_reasons as (
    select
        reason_source,
        reason_code,
        count(*) as occurrences
    from {{ ref('int_defection_stated_reasons') }}
    group by reason_source, reason_code
),

stated_reason_map as (
    select * from {{ ref('stated_reason_map') }}
)

select
    stated_reasons.reason_source,
    stated_reasons.reason_code,
    stated_reasons.occurrences
from stated_reasons
left join stated_reason_map
    on
        stated_reasons.reason_source = stated_reason_map.reason_source
        and stated_reasons.reason_code = stated_reason_map.reason_code
where stated_reason_map.reason_code is null
