-- One row per CRM account or billing customer: the billing customer carries the CRM
-- account id it was created for; either side may exist without the other.
with

-- every CRM account once: its current version in the history already built (the staging
-- view would rank every landed version again)
accounts as (
    select crm_account_id as account_id
    from {{ ref('int_identity__account_history') }}
    where is_current
),

customers as (
    select
        customer_id,
        crm_account_id
    from {{ ref('stg_billing__customers') }}
),

joined as (
    select
        coalesce(accounts.account_id, customers.crm_account_id) as crm_account_id,
        customers.customer_id,
        case
            when accounts.account_id is not null and customers.customer_id is not null
                then 'matched'
            when accounts.account_id is not null then 'crm_only'
            else 'billing_only'
        end as match_status
    from accounts
    full outer join customers
        on accounts.account_id = customers.crm_account_id
),

final as (
    select
        crm_account_id::text as crm_account_id,
        customer_id::text as customer_id,
        match_status::text as match_status
    from joined
)

select * from final
