-- Drawing stayers ranks some 300,000 customer-months at 100,000 customers (about 50 MB):
-- the sort gets the memory to do it at once rather than on disk.
{{ config(pre_hook="set local work_mem = '128MB'") }}

-- The customers who stayed, as the comparison for the defections: for each defection up
-- to lift_stayers_per_defection customers of the same stratum (defection month, tenure
-- band at the month's start and segment), paying through that month and still paying
-- 90 days after it (or at the as-of date, for the latest months), drawn in a fixed
-- pseudo-random order (a stable hash of customer and month) so every build picks the same
-- ones.
-- At most lift_max_matched_defections defections are matched (drawn by a stable hash of
-- their id):
-- a few thousand comparisons already measure a lift closely, and every stayer is judged
-- by every rule each night.
-- Each stayer is judged as of its defection's moment, over the same windows, so a signal's
-- rate among leavers and among stayers compare like with like (int_attribution__signal_lift).
with

defections as (
    select * from {{ ref('int_defections') }}
),

spells as (
    select * from {{ ref('int_revenue__spells') }}
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
            {{ whole_months_between('defections.spell_started_at', 'defections.defection_month') }},
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

drawn_leavers as (
    select *
    from leavers
    order by hashtextextended(defection_id, 0), defection_id
    limit {{ var('lift_max_matched_defections') }}
),

-- the months with a defection to match
months as (
    select
        month,
        month::timestamp at time zone 'utc' as month_start_at,
        {{ month_index('month') }} as month_index
    from {{ ref('int_revenue__months') }}
    where month in (select drawn_leavers.month from drawn_leavers)
),

-- The draw takes, in each stratum, the customer-months of lowest draw key (a 64-bit hash
-- of customer and month, hashtextextended: the stable hash PostgreSQL partitions by). It
-- first keeps only those whose key lies in the lowest share of its range, sixteen times
-- the share the draw needs over all strata (or all of them): the same customers are drawn
-- unless a stratum had too few keys that low (it then gets fewer), and the ranking sorts
-- a fraction of the million customer-months there are at 100,000 customers.
pool as (
    select count(*) as customer_months
    from spells
    inner join months
        on
            spells.spell_started_at < months.month_start_at
            and coalesce(spells.spell_ended_at, 'infinity'::timestamptz)
            > months.month_start_at + interval '1 month' + make_interval(days => 90)
),

draw_share as (
    select
        -- the highest draw key kept, from -2^63 (none) to 2^63 - 1 (all)
        least(
            -9223372036854775808 + 18446744073709551616.0 * least(
                1.0,
                16.0 * {{ var('lift_stayers_per_defection') }}
                * (select count(*) from drawn_leavers) / greatest(pool.customer_months, 1)
            ),
            9223372036854775807
        )::bigint as highest_key
    from pool
),

-- each paid spell with the versions of its CRM account (none without a CRM link): the
-- segment of a month is the version's valid at the month's start
spell_versions as (
    select
        spells.customer_id,
        spells.spell_started_at,
        spells.spell_ended_at,
        customers.crm_account_id,
        coalesce(account_history.segment, 'unknown') as segment,
        {{ month_index("spells.spell_started_at at time zone 'utc'") }}
        + {{ started_mid_month('spells.spell_started_at') }} as first_full_month_index,
        coalesce(account_history.valid_from, '-infinity'::timestamptz) as valid_from,
        coalesce(account_history.valid_to, 'infinity'::timestamptz) as valid_to
    from spells
    left join customers
        on spells.customer_id = customers.customer_id
    left join account_history
        on customers.crm_account_id = account_history.crm_account_id
),

-- stayers: paid spells running from before the month's start until at least 90 days
-- after its end (a spell that ended by the as-of date ended before that for the latest
-- months, so there only spells still running qualify)
pooled as (
    select
        hashtextextended(spell_versions.customer_id || '|' || months.month, 0) as draw_key,
        spell_versions.customer_id,
        spell_versions.crm_account_id,
        spell_versions.segment,
        months.month,
        spell_versions.spell_started_at,
        -- whole months of tenure, as whole_months_between counts them
        width_bucket(
            months.month_index - spell_versions.first_full_month_index,
            array{{ var('lift_tenure_band_months') }}
        ) as tenure_band
    from spell_versions
    inner join months
        on
            spell_versions.spell_started_at < months.month_start_at
            and coalesce(spell_versions.spell_ended_at, 'infinity'::timestamptz)
            > months.month_start_at + interval '1 month' + make_interval(days => 90)
            and spell_versions.valid_from <= months.month_start_at
            and spell_versions.valid_to > months.month_start_at
),

candidates as (
    select pooled.*
    from pooled
    where pooled.draw_key <= (select draw_share.highest_key from draw_share)
),

-- materialized, here and below: the join on the rank must see the ranks as plain columns
-- (joined on the window's output, the planner matched every leaver of a stratum with every
-- candidate of it and filtered: 100 million pairs at 100,000 customers)
ranked_leavers as materialized (
    select
        drawn_leavers.*,
        row_number() over (
            partition by drawn_leavers.month, drawn_leavers.tenure_band, drawn_leavers.segment
            order by drawn_leavers.defection_id
        ) as leaver_rank
    from drawn_leavers
),

-- the stratum's leaver number r takes the stayers drawn (r - 1) * k + 1 to r * k
ranked_candidates as materialized (
    select
        candidates.*,
        (
            row_number() over (
                partition by candidates.month, candidates.tenure_band, candidates.segment
                order by candidates.draw_key, candidates.customer_id
            ) - 1
        ) / {{ var('lift_stayers_per_defection') }} + 1 as leaver_rank
    from candidates
),

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
            and ranked_leavers.leaver_rank = ranked_candidates.leaver_rank
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
