{{ config(
    materialized='incremental',
    unique_key=['response_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[{'columns': ['response_id'], 'unique': True}, {'columns': ['built_at']},
             {'columns': ['contact_id']}]
) }}

-- Survey responses matched to a CRM contact (and so to an account) by e-mail address.
-- Staging already lower-cases and trims both sides; unmatched responses are kept.
-- A night matches again only the responses whose match can have changed: responses
-- written to staging since this table's last build, responses of a survey loaded since,
-- and every response with the e-mail of a contact changed since (its new e-mail, and the
-- e-mail of the responses it matched before). A night that loaded a survey day again is
-- built with --full-refresh (dbt_builds.py), which matches everything.
with

-- not materialized: each use below reads only the rows it needs (through the built_at
-- index where it can) instead of a copy of every response and contact
responses as not materialized (
    select * from {{ ref('stg_survey__responses') }}
),

surveys as (
    select
        survey_id,
        survey_kind,
        loaded_at
    from {{ ref('stg_survey__surveys') }}
),

all_contacts as not materialized (
    select * from {{ ref('stg_crm__contacts') }}
),

-- the previous build (none when the table is built from scratch: then every response)
since as (
    {% if is_incremental() %}
        select max(built_at) as built_at from {{ this }}
    {% else %}
        select null::timestamptz as built_at
    {% endif %}
),

changed_contacts as (
    select
        all_contacts.contact_id,
        all_contacts.email_hash
    from all_contacts
    where all_contacts.built_at > (select since.built_at from since)
),

affected_emails as (
    select changed_contacts.email_hash
    from changed_contacts
    where changed_contacts.email_hash is not null
    {% if is_incremental() %}
        union
        select held.respondent_email_hash
        from {{ this }} as held
        where held.contact_id in (select changed_contacts.contact_id from changed_contacts)
    {% endif %}
),

scope_ids as (
    select responses.response_id
    from responses
    where
        (select since.built_at from since) is null
        or responses.built_at > (select since.built_at from since)
    union
    select responses.response_id
    from responses
    inner join affected_emails
        on responses.respondent_email_hash = affected_emails.email_hash
    union
    select responses.response_id
    from responses
    inner join surveys
        on responses.survey_id = surveys.survey_id
    where surveys.loaded_at > (select since.built_at from since)
),

scope as (
    select responses.*
    from responses
    inner join scope_ids
        on responses.response_id = scope_ids.response_id
),

contacts as (
    select
        contact_id,
        account_id,
        email_hash,
        -- several live contacts could share an address: take the oldest one
        row_number() over (partition by email_hash order by created_at, contact_id)
            as email_rank
    from all_contacts
    where
        not coalesce(is_deleted, false)
        and email_hash in (select scope.respondent_email_hash from scope)
),

final as (
    select
        scope.response_id,
        scope.survey_id,
        surveys.survey_kind,
        scope.respondent_email_hash,
        scope.submitted_at,
        scope.score,
        scope.response_comment,
        contacts.contact_id,
        contacts.account_id as crm_account_id,
        contacts.contact_id is not null as is_matched,
        {{ build_stamp() }} as built_at
    from scope
    left join surveys
        on scope.survey_id = surveys.survey_id
    left join contacts
        on
            scope.respondent_email_hash = contacts.email_hash
            and contacts.email_rank = 1
)

select * from final
