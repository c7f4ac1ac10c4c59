with

source as (
    {{ latest_version(
        source('survey', 'exit_answers'),
        ['response_id'],
        '_logical_date desc, _source_file desc'
    ) }}
),

final as (
    select
        response_id,
        primary_reason,
        other_reasons,
        comment as exit_comment,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
)

select * from final
