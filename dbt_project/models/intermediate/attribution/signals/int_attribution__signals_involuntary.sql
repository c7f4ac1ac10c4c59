-- Payments family (financial_distress): a defection that billing ended for non-payment
-- (int_defections.is_involuntary) is evidence in itself, observed at the defection.
with

windows as (
    select * from {{ ref('int_attribution__checkpoint_windows') }}
    where signal_id = 'financial_distress_involuntary'
),

final as (
    select
        checkpoint_id,
        signal_id as evidence_source,
        null::text as reason_code,
        'involuntary defection: billing ended the subscription for non-payment'
            as evidence_detail,
        window_end_at as observed_at,
        1 as item_count,
        min_count
    from windows
    where is_involuntary
)

select * from final
