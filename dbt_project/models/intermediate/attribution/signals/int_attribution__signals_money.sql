-- Money family: friction over the customer's payments in the window, from billing alone
-- (refunds and disputes are hassle; failed charges, financial distress). Each rule counts
-- its rows; the detail names them in the order they happened.
with

windows as (
    select * from {{ ref('int_attribution__checkpoint_windows') }}
    where signal_id in ('hassle_refund', 'hassle_dispute', 'financial_distress_failed_payments')
),

-- each rule's rows: a refund or a dispute names a charge, which names the customer
money_items as (
    select
        'hassle_refund' as signal_id,
        charges.customer_id,
        refunds.refund_id as item_id,
        format(
            'refund %s of %s cents (%s)', refunds.refund_id, refunds.amount,
            refunds.refund_reason
        ) as item_detail,
        refunds.created_at
    from {{ ref('stg_billing__refunds') }} as refunds
    inner join {{ ref('stg_billing__charges') }} as charges
        on refunds.charge_id = charges.charge_id
    union all
    select
        'hassle_dispute' as signal_id,
        charges.customer_id,
        disputes.dispute_id as item_id,
        format(
            'dispute %s of %s cents (%s, %s)', disputes.dispute_id, disputes.amount,
            disputes.dispute_reason, disputes.dispute_status
        ) as item_detail,
        disputes.created_at
    from {{ ref('stg_billing__disputes') }} as disputes
    inner join {{ ref('stg_billing__charges') }} as charges
        on disputes.charge_id = charges.charge_id
    union all
    select
        'financial_distress_failed_payments' as signal_id,
        customer_id,
        charge_id as item_id,
        format('charge %s failed (%s)', charge_id, failure_code) as item_detail,
        created_at
    from {{ ref('stg_billing__charges') }}
    where charge_status = 'failed'
),

window_items as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.min_count,
        money_items.item_id,
        money_items.item_detail,
        money_items.created_at
    from windows
    inner join money_items
        on
            windows.signal_id = money_items.signal_id
            and windows.customer_id = money_items.customer_id
            and windows.window_start_at <= money_items.created_at
            and windows.window_end_at > money_items.created_at
),

final as (
    select
        checkpoint_id,
        signal_id as evidence_source,
        null::text as reason_code,
        case
            when count(*) > 1
                then format(
                    '%s %s: ', count(*),
                    case signal_id
                        when 'hassle_refund' then 'refunds'
                        when 'hassle_dispute' then 'disputes' else 'failed charges'
                    end
                )
            else ''
        end
        || string_agg(item_detail, '; ' order by created_at, item_id) as evidence_detail,
        min(created_at) as observed_at,
        count(*) as item_count,
        min(min_count) as min_count
    from window_items
    group by checkpoint_id, signal_id
)

select * from final
