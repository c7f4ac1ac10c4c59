with

source as (
    {{ latest_version(
        source('survey', 'surveys'),
        ['survey_id'],
        '_logical_date desc, _source_file desc'
    ) }}
),

final as (
    select
        survey_id,
        kind as survey_kind,
        title as survey_title,
        created_at,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
)

select * from final
