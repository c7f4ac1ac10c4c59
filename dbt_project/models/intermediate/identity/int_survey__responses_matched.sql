-- Survey responses matched to a CRM contact (and so to an account) by e-mail address.
-- Staging already lower-cases and trims both sides; unmatched responses are kept.
with

responses as (
    select * from {{ ref('stg_survey__responses') }}
),

surveys as (
    select * from {{ ref('stg_survey__surveys') }}
),

-- several live contacts could share an address: the oldest one is matched
contacts as (
    select distinct on (email_hash)
        email_hash,
        contact_id,
        account_id
    from {{ ref('stg_crm__contacts') }}
    where not coalesce(is_deleted, false)
    order by email_hash, created_at, contact_id
),

final as (
    select
        responses.response_id,
        responses.survey_id,
        surveys.survey_kind,
        responses.respondent_email_hash,
        responses.submitted_at,
        responses.score,
        responses.response_comment,
        contacts.contact_id,
        contacts.account_id as crm_account_id,
        contacts.contact_id is not null as is_matched
    from responses
    left join surveys
        on responses.survey_id = surveys.survey_id
    left join contacts
        on responses.respondent_email_hash = contacts.email_hash
)

select * from final
