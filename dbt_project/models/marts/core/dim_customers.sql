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

monthly as (
    select * from {{ ref('fct_customer_mrr_monthly') }}
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

revenue as (
    select
        customer_id,
        min(month) filter (where is_active) as cohort_month,
        max(month) filter (where is_active) as last_paying_month,
        coalesce(max(mrr) filter (where is_as_of_month), 0) as current_mrr
    from monthly
    group by customer_id
),

final as (
    select
        customers.customer_id::text as customer_id,
        crosswalk.crm_account_id::bigint as crm_account_id,
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
