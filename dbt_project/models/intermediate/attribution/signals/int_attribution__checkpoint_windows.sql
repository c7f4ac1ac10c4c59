-- One row per checkpoint and enabled signal rule: the rule's lookback window before the
-- checkpoint, [window_start_at, window_end_at), with the rule's threshold and the number
-- of rows it needs. The signal families read their rules' windows from here.
with

checkpoints as (
    select * from {{ ref('int_attribution__checkpoints') }}
),

-- a rule without strength could never weigh on a cause, so it is looked for nowhere
rules as (
    select
        signal_id,
        threshold,
        baseline,
        baseline_factor,
        coalesce(min_count, 1) as min_count,
        -- an empty lookback follows the project's window for the rule's kind
        coalesce(
            lookback_days,
            case window_kind
                when 'survey' then {{ var('survey_lookback_days') }}
                else {{ var('attribution_lookback_days') }}
            end
        ) as lookback_days
    from {{ ref('signal_rules') }}
    where
        is_enabled
        and strength > 0
),

final as (
    select
        checkpoints.checkpoint_id,
        checkpoints.checkpoint_kind,
        checkpoints.customer_id,
        checkpoints.crm_account_id,
        rules.signal_id,
        rules.threshold,
        rules.baseline,
        rules.baseline_factor,
        rules.min_count,
        rules.lookback_days,
        checkpoints.window_end_at - make_interval(days => rules.lookback_days)
            as window_start_at,
        checkpoints.window_end_at,
        -- date-valued data (usage snapshots, go-live dates) is windowed by date
        checkpoints.window_end_date - rules.lookback_days as window_start_date,
        checkpoints.window_end_date,
        checkpoints.relationship_started_at,
        checkpoints.is_involuntary
    from checkpoints
    cross join rules
)

select * from final
