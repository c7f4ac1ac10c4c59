{{ incremental_staging_config(['response_id']) }}

with

source as (
    {{ incremental_latest_version(
        source('survey', 'responses'),
        ['response_id'],
        '_logical_date desc, _source_file desc'
    ) }}
),

final as (
    select
        response_id,
        survey_id,
        {{ pseudonymize('lower(trim(respondent_email))') }} as respondent_email_hash,
        submitted_at,
        score,
        comment as response_comment,
        _batch_id as batch_id,
        _loaded_at as loaded_at,
        {{ build_stamp() }} as built_at
    from source
)

select * from final
