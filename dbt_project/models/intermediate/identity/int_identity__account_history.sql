-- CRM account attributes as a type-2 history: one row per account version, valid from
-- its updated_at until the next version's. The earliest known version also stands for
-- the time before it, so every instant of an account's life maps to exactly one row.
with

versions as (
    select * from {{ ref('stg_crm__account_versions') }}
),

ranged as (
    select
        account_id,
        updated_at,
        segment,
        industry,
        employee_count,
        region,
        owner_name,
        is_deleted,
        row_number() over (partition by account_id order by updated_at) as version_number,
        lead(updated_at) over (partition by account_id order by updated_at) as next_updated_at
    from versions
),

final as (
    select
        account_id as crm_account_id,
        version_number::int as version_number,
        case when version_number = 1 then '-infinity'::timestamptz else updated_at end
            as valid_from,
        coalesce(next_updated_at, 'infinity'::timestamptz) as valid_to,
        next_updated_at is null as is_current,
        updated_at,
        segment,
        industry,
        employee_count,
        region,
        owner_name,
        is_deleted
    from ranged
)

select * from final
