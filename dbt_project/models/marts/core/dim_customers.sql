-- One row per billing customer: crosswalked CRM identity, current CRM attributes,
-- cohort and current status. Personal data is pseudonymised (keyed HMAC); no plain-text
-- e-mails or names.
with

customers as (
    select * from {{ ref('stg_billing__customers') }}
),

crosswalk as (
    select * from {{ ref('int_identity__crosswalk') }}
    where customer_id is not null
),

accounts as (
    select * from {{ ref('int_identity__account_history') }}
    where is_current
),

movements as (
    select
        customer_id,
        month,
        previous_mrr,
        current_mrr
    from {{ ref('fct_mrr_movements') }}
),

as_of as (
    select date_trunc('month', {{ as_of_date() }})::date as as_of_month
),

defections as (
    select
        customer_id,
        count(*) as defection_count,
        max(defection_date) as last_defection_date
    from {{ ref('int_defections') }}
    group by customer_id
),

spells as (
    select
        customer_id,
        min(spell_started_at) as first_paid_started_at
    from {{ ref('int_revenue__spells') }}
    group by customer_id
),

-- A customer's MRR changes only with a movement, so its movements (a tenth of its
-- customer-months) tell its revenue history: the first one ('new') is in its first paying
-- month, the newest holds its MRR in the as-of month, and one not paying now paid last in
-- the month before it stopped paying (MRR from above 0 to 0 or below) for the last time.
movement_history as (
    select
        customer_id,
        min(month) as cohort_month,
        (array_agg(current_mrr order by month desc))[1] as current_mrr,
        max(month) filter (where previous_mrr > 0 and current_mrr <= 0) as last_stop_month
    from movements
    group by customer_id
),

revenue as (
    select
        movement_history.customer_id,
        movement_history.cohort_month,
        case
            when movement_history.current_mrr > 0 then as_of.as_of_month
            else (movement_history.last_stop_month - interval '1 month')::date
        end as last_paying_month,
        movement_history.current_mrr
    from movement_history
    cross join as_of
),

final as (
    select
        customers.customer_id::text as customer_id,
        crosswalk.crm_account_id::text as crm_account_id,
        crosswalk.match_status::text as match_status,
        customers.email_hash::text as email_hash,
        accounts.segment::text as segment,
        accounts.industry::text as industry,
        accounts.employee_count::int as employee_count,
        accounts.region::text as region,
        accounts.owner_name::text as owner_name,
        coalesce(accounts.is_deleted, false)::boolean as is_crm_deleted,
        customers.created_at::timestamptz as customer_created_at,
        spells.first_paid_started_at::timestamptz as first_paid_started_at,
        revenue.cohort_month::date as cohort_month,
        revenue.last_paying_month::date as last_paying_month,
        coalesce(revenue.current_mrr, 0)::bigint as current_mrr,
        (
            case
                when revenue.current_mrr > 0 then 'active'
                when revenue.cohort_month is not null or defections.customer_id is not null
                    then 'churned'
                else 'never_paid'
            end
        )::text as customer_status,
        coalesce(defections.defection_count, 0)::int as defection_count,
        defections.last_defection_date::date as last_defection_date,
        coalesce(customers.is_delinquent, false)::boolean as is_delinquent
    from customers
    left join crosswalk
        on customers.customer_id = crosswalk.customer_id
    left join accounts
        on crosswalk.crm_account_id = accounts.crm_account_id
    left join revenue
        on customers.customer_id = revenue.customer_id
    left join defections
        on customers.customer_id = defections.customer_id
    left join spells
        on customers.customer_id = spells.customer_id
)

select * from final
