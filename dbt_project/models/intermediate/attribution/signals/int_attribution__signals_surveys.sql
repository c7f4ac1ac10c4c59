-- Survey-score family (goals_unmet): relationship NPS answers from the account's contacts
-- in the window that scored the threshold or lower (detractors), named in the order they
-- were submitted.
with

windows as (
    select * from {{ ref('int_attribution__checkpoint_windows') }}
    where signal_id = 'goals_unmet_detractor'
),

nps_responses as (
    select
        response_id,
        crm_account_id,
        contact_id,
        submitted_at,
        score
    from {{ ref('int_survey__responses_matched') }}
    where
        is_matched
        and survey_kind = 'relationship_nps'
),

detractors as (
    select
        windows.checkpoint_id,
        windows.signal_id,
        windows.min_count,
        nps_responses.response_id,
        nps_responses.submitted_at,
        format(
            'NPS %s from contact %s on %s', nps_responses.score, nps_responses.contact_id,
            to_char(nps_responses.submitted_at at time zone 'utc', 'YYYY-MM-DD')
        ) as item_detail
    from windows
    inner join nps_responses
        on
            windows.crm_account_id = nps_responses.crm_account_id
            and windows.threshold >= nps_responses.score
            and windows.window_start_at <= nps_responses.submitted_at
            and windows.window_end_at > nps_responses.submitted_at
),

final as (
    select
        checkpoint_id,
        signal_id as evidence_source,
        null::text as reason_code,
        string_agg(item_detail, '; ' order by submitted_at, response_id) as evidence_detail,
        min(submitted_at) as observed_at,
        count(*) as item_count,
        min(min_count) as min_count
    from detractors
    group by checkpoint_id, signal_id
)

select * from final
