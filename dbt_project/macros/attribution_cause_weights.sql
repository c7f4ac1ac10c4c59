{#-
    Turns evidence rows into one row per (key, cause) with the cause's weight.

    evidence: a relation or CTE name with columns <key>, cause_id, evidence_type,
    evidence_source, evidence_detail, strength. taxonomy: the cause_taxonomy relation.

    A cause's weight is its summed strength over the key's total strength, rounded to
    6 decimals; the rounding remainder goes to the top-ranked cause so that the weights of
    one key sum to exactly 1. Causes rank by strength; at equal strength the cause backed
    by more pieces of evidence first (corroboration), then the one with more stated
    strength (the customer's own words), then the taxonomy's display order.
    Returns a select with: <key>, cause_id, strength, stated_strength, observed_strength,
    evidence (text[]), evidence_count, is_stated, is_observed, cause_rank, weight.
-#}
{% macro attribution_cause_weights(evidence, key, taxonomy) %}
    with

    per_cause as (
        select
            ev.{{ key }},
            ev.cause_id,
            sum(ev.strength) as strength,
            coalesce(sum(ev.strength) filter (where ev.evidence_type = 'stated'), 0)
                as stated_strength,
            coalesce(sum(ev.strength) filter (where ev.evidence_type = 'observed'), 0)
                as observed_strength,
            array_agg(
                ev.evidence_detail
                order by ev.evidence_type desc, ev.strength desc, ev.evidence_source,
                    ev.evidence_detail
            )::text[] as evidence,
            count(*)::int as evidence_count,
            bool_or(ev.evidence_type = 'stated') as is_stated,
            bool_or(ev.evidence_type = 'observed') as is_observed
        from {{ evidence }} as ev
        group by ev.{{ key }}, ev.cause_id
    ),

    ranked as (
        select
            per_cause.*,
            row_number() over (
                partition by per_cause.{{ key }}
                order by per_cause.strength desc, per_cause.evidence_count desc,
                    per_cause.stated_strength desc, coalesce(tax.display_order, 999),
                    per_cause.cause_id
            )::int as cause_rank,
            round(
                per_cause.strength / sum(per_cause.strength) over (partition by per_cause.{{ key }}),
                6
            ) as rounded_weight
        from per_cause
        left join {{ taxonomy }} as tax
            on per_cause.cause_id = tax.cause_id
    )

    select
        {{ key }},
        cause_id,
        strength,
        stated_strength,
        observed_strength,
        evidence,
        evidence_count,
        is_stated,
        is_observed,
        cause_rank,
        (
            rounded_weight
            + case
                when cause_rank = 1
                    then 1 - sum(rounded_weight) over (partition by {{ key }})
                else 0
            end
        )::numeric(9, 6) as weight
    from ranked
{% endmacro %}
