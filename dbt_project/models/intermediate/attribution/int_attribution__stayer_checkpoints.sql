-- The customers who stayed, as the comparison for every defection: for each defection up
-- to lift_stayers_per_defection customers of the same stratum (defection month, tenure
-- band at the month's start and segment), paying through that month and still paying
-- 90 days after it (or at the as-of date, for the latest months), drawn in a fixed
-- pseudo-random order (md5 of customer and month) so every build picks the same ones.
-- Each stayer is judged as of its defection's moment, over the same windows, so a signal's
-- rate among leavers and among stayers compare like with like (int_attribution__signal_lift).
with

defections as (
    select * from {{ ref('int_defections') }}
),

spells as (
    select * from {{ ref('int_revenue__spells') }}
),

months as (
    select month from {{ ref('int_revenue__months') }}
),

customers as (
    select
        customer_id,
        crm_account_id
    from {{ ref('stg_billing__customers') }}
),

account_history as (
    select * from {{ ref('int_identity__account_history') }}
),

-- a leaver's stratum; tenure counts whole months from the spell's start to the month's
-- start (0 for a spell that started within the month)
leavers as (
    select
        defections.defection_id,
        defections.defection_month as month,  -- noqa: RF04
        width_bucket(
            greatest(0, (
                extract(year from age(defections.defection_month, defections.spell_started_at))
                * 12
                + extract(month from age(defections.defection_month, defections.spell_started_at))
            )::int),
            array{{ var('lift_tenure_band_months') }}
        ) as tenure_band,
        coalesce(account_history.segment, 'unknown') as segment,
        defections.defected_at,
        defections.defection_date
    from defections
    left join account_history
        on
            defections.crm_account_id = account_history.crm_account_id
            and defections.defected_at >= account_history.valid_from
            and defections.defected_at < account_history.valid_to
),

-- stayers: paid spells running from before the month's start until at least 90 days
-- after its end (a spell that ended by the as-of date ended before that for the latest
-- months, so there only spells still running qualify)
candidates as (
    select
        spells.customer_id,
        months.month,
        spells.spell_started_at,
        width_bucket(
            (
                extract(year from age(months.month, spells.spell_started_at)) * 12
                + extract(month from age(months.month, spells.spell_started_at))
            )::int,
            array{{ var('lift_tenure_band_months') }}
        ) as tenure_band
    from spells
    inner join months
        on
            spells.spell_started_at < months.month::timestamp at time zone 'utc'
            and coalesce(spells.spell_ended_at, 'infinity'::timestamptz)
            > (months.month + interval '1 month' + make_interval(days => 90))
            at time zone 'utc'
    where months.month in (select leavers.month from leavers)
),

candidates_segmented as (
    select
        candidates.*,
        customers.crm_account_id,
        coalesce(account_history.segment, 'unknown') as segment
    from candidates
    left join customers
        on candidates.customer_id = customers.customer_id
    left join account_history
        on
            customers.crm_account_id = account_history.crm_account_id
            and candidates.month::timestamp at time zone 'utc' >= account_history.valid_from
            and candidates.month::timestamp at time zone 'utc' < account_history.valid_to
),

ranked_leavers as (
    select
        leavers.*,
        row_number() over (
            partition by leavers.month, leavers.tenure_band, leavers.segment
            order by leavers.defection_id
        ) as leaver_rank
    from leavers
),

ranked_candidates as (
    select
        candidates_segmented.*,
        row_number() over (
            partition by
                candidates_segmented.month, candidates_segmented.tenure_band,
                candidates_segmented.segment
            order by md5(candidates_segmented.customer_id || '|' || candidates_segmented.month)
        ) as candidate_rank
    from candidates_segmented
),

-- the stratum's leaver number r takes the stayers ranked (r - 1) * k + 1 to r * k
matched as (
    select
        ranked_leavers.defection_id as matched_defection_id,
        ranked_leavers.defected_at,
        ranked_leavers.defection_date,
        ranked_candidates.customer_id,
        ranked_candidates.crm_account_id,
        ranked_candidates.spell_started_at,
        ranked_candidates.month,
        ranked_candidates.tenure_band,
        ranked_candidates.segment
    from ranked_leavers
    inner join ranked_candidates
        on
            ranked_leavers.month = ranked_candidates.month
            and ranked_leavers.tenure_band = ranked_candidates.tenure_band
            and ranked_leavers.segment = ranked_candidates.segment
            and ranked_leavers.leaver_rank
            = (ranked_candidates.candidate_rank - 1) / {{ var('lift_stayers_per_defection') }} + 1
),

final as (
    select
        md5('stayer|' || customer_id || '|' || matched_defection_id)::text as checkpoint_id,
        customer_id::text as customer_id,
        crm_account_id::text as crm_account_id,
        matched_defection_id::text as matched_defection_id,
        defection_date::date as as_of_date,
        defected_at::timestamptz as window_end_at,
        defection_date::date as window_end_date,
        spell_started_at::timestamptz as relationship_started_at,
        month::date as stratum_month,
        tenure_band::int as tenure_band,
        segment::text as segment
    from matched
)

select * from final
