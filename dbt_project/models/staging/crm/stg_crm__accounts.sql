-- The newest version of each account. Renames and casts live in stg_crm__account_versions,
-- so the current view and the history cannot drift apart.
with

versions as (
    select * from {{ ref('stg_crm__account_versions') }}
),

final as (
    select distinct on (account_id) *
    from versions
    order by account_id asc, updated_at desc, batch_id desc
)

select * from final
