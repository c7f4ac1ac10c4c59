-- Every reason a defecting customer stated, as stated (not mapped to causes): exit-survey
-- answers of a contact of the defecting account submitted from survey_lookback_days
-- before the defection date up to 30 days after it, and the billing cancellation
-- feedback and reason of the subscriptions that ended the relationship.
with

defections as (
    select
        defection_id,
        crm_account_id,
        defection_date
    from {{ ref('int_defections') }}
),

defection_subscriptions as (
    select * from {{ ref('int_defection_subscriptions') }}
),

subscriptions as (
    select
        subscription_id,
        canceled_at
    from {{ ref('int_revenue__subscriptions') }}
),

responses as (
    select * from {{ ref('int_survey__responses_matched') }}
    where
        survey_kind = 'exit'
        and is_matched
),

exit_answers as (
    select * from {{ ref('stg_survey__exit_answers') }}
),

exit_responses as (
    select
        defections.defection_id,
        responses.response_id,
        responses.submitted_at,
        exit_answers.primary_reason,
        exit_answers.other_reasons,
        nullif(trim(exit_answers.exit_comment), '') as exit_comment
    from defections
    inner join responses
        on
            defections.crm_account_id = responses.crm_account_id
            and responses.submitted_at
            >= (defections.defection_date - {{ var('survey_lookback_days') }})::timestamp
            at time zone 'utc'
            and responses.submitted_at
            < (defections.defection_date + 31)::timestamp at time zone 'utc'
    inner join exit_answers
        on responses.response_id = exit_answers.response_id
),

exit_primary as (
    select
        defection_id,
        'exit_survey_primary' as reason_source,
        primary_reason as reason_code,
        exit_comment as comment,  -- noqa: RF04
        submitted_at as stated_at,
        response_id,
        null::text as subscription_id
    from exit_responses
    where nullif(trim(primary_reason), '') is not null
),

exit_other as (
    select distinct
        exit_responses.defection_id,
        'exit_survey_other' as reason_source,
        trim(other_reason.reason_code) as reason_code,
        null::text as comment,  -- noqa: RF04
        exit_responses.submitted_at as stated_at,
        exit_responses.response_id,
        null::text as subscription_id
    from exit_responses
    cross join
        lateral
        unnest(string_to_array(exit_responses.other_reasons, ';')) as other_reason (reason_code)
    where nullif(trim(other_reason.reason_code), '') is not null
),

billing_feedback as (
    select
        defection_subscriptions.defection_id,
        'billing_feedback' as reason_source,
        defection_subscriptions.cancellation_feedback as reason_code,
        nullif(trim(defection_subscriptions.cancellation_comment), '') as comment,  -- noqa: RF04
        coalesce(subscriptions.canceled_at, defection_subscriptions.ended_at) as stated_at,
        null::text as response_id,
        defection_subscriptions.subscription_id
    from defection_subscriptions
    left join subscriptions
        on defection_subscriptions.subscription_id = subscriptions.subscription_id
    where nullif(trim(defection_subscriptions.cancellation_feedback), '') is not null
),

billing_reason as (
    select
        defection_subscriptions.defection_id,
        'billing_reason' as reason_source,
        defection_subscriptions.cancellation_reason as reason_code,
        null::text as comment,  -- noqa: RF04
        coalesce(subscriptions.canceled_at, defection_subscriptions.ended_at) as stated_at,
        null::text as response_id,
        defection_subscriptions.subscription_id
    from defection_subscriptions
    left join subscriptions
        on defection_subscriptions.subscription_id = subscriptions.subscription_id
    where nullif(trim(defection_subscriptions.cancellation_reason), '') is not null
),

unioned as (
    select * from exit_primary
    union all
    select * from exit_other
    union all
    select * from billing_feedback
    union all
    select * from billing_reason
),

final as (
    select
        defection_id::text as defection_id,
        reason_source::text as reason_source,
        reason_code::text as reason_code,
        comment::text as comment,  -- noqa: RF04
        stated_at::timestamptz as stated_at,
        response_id::text as response_id,
        subscription_id::text as subscription_id
    from unioned
)

select * from final
