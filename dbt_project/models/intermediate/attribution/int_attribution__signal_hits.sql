-- One row per signal rule that fired at a checkpoint, of every kind (defections, the
-- stayers matched to them, customers paying now and at the backtest dates): the union of
-- the observed signal families (int_attribution__signals_*), kept where the rule reached
-- its min_count and its evidence family was available at the checkpoint
-- (int_attribution__evidence_families): absent data is never evidence. The strength is
-- the seed's; int_attribution__signal_lift learns from these rows how far each rule
-- tells leavers from stayers, and int_attribution__evidence scales the strength by it.
with

checkpoints as (
    select
        checkpoint_id,
        checkpoint_kind,
        segment
    from {{ ref('int_attribution__checkpoints') }}
),

rules as (
    select * from {{ ref('signal_rules') }}
),

families as (
    select * from {{ ref('int_attribution__evidence_families') }}
),

signals as (
    select * from {{ ref('int_attribution__signals_fit') }}
    union all
    select * from {{ ref('int_attribution__signals_oversold') }}
    union all
    select * from {{ ref('int_attribution__signals_adoption') }}
    union all
    select * from {{ ref('int_attribution__signals_tickets') }}
    union all
    select * from {{ ref('int_attribution__signals_money') }}
    union all
    select * from {{ ref('int_attribution__signals_involuntary') }}
    union all
    select * from {{ ref('int_attribution__signals_contact') }}
    union all
    select * from {{ ref('int_attribution__signals_surveys') }}
),

final as (
    select
        signals.checkpoint_id::text as checkpoint_id,
        checkpoints.checkpoint_kind::text as checkpoint_kind,
        checkpoints.segment::text as segment,
        signals.evidence_source::text as signal_id,
        rules.cause_id::text as cause_id,
        signals.evidence_detail::text as evidence_detail,
        rules.strength::numeric as seed_strength,
        signals.observed_at::timestamptz as observed_at
    from signals
    inner join rules
        on signals.evidence_source = rules.signal_id
    inner join families
        on signals.checkpoint_id = families.checkpoint_id
    inner join checkpoints
        on signals.checkpoint_id = checkpoints.checkpoint_id
    where
        signals.item_count >= signals.min_count
        and {{ evidence_family_available('rules.evidence_family', 'families') }}
)

select * from final
