"""The quality gate's expectation suites, defined once, here, in Python.

``python -m defection_warehouse.quality.gate write-suites`` writes them as the JSON suites
of the GX project under ``expectations/gx/expectations/``; a test keeps the two in sync and
the gate runs the committed JSON.

Raw suites (one per raw table, named after it) judge one load batch: every expectation
carries ``meta.rows``, which the gate turns into a row condition on ``_logical_date`` at run
time (indexed, so a check never scans older batches):

- ``batch``: the rows of the logical date's batch;
- ``recent``: the batches of the freshness window (an incremental table's newest change
  may have been loaded a few days earlier: a quiet day is not a stale source);
- ``table``: the table itself (its columns).

Mart suites (``marts.<model>``) judge the built marts in the build schema, whatever its
name: SQL checks name other marts unqualified and the gate sets the search path. They
hold the publish gate's business checks only; keys, not-null, relationships and accepted
values of the marts are dbt's tests (one home for each rule, see expectations/README.md).

Values known only at run time are suite parameters (``$PARAMETER``): the volume band from
the load history, the freshness cut-off and the as-of date.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.core.expectation_suite import ExpectationSuiteSchema
from great_expectations.expectations.metadata_types import FailureSeverity

from defection_warehouse.sources.contracts import (
    ENTITIES,
    EXIT_REASON_OPTIONS,
    LOAD_COLUMNS,
    Entity,
)

_IDS = uuid.UUID("6f1c2d4e-5b7a-4c39-9e8d-0a1b2c3d4e5f")  # namespace of stable suite ids
MART_PREFIX = "marts."
GENERATED_BY = "python -m defection_warehouse.quality.gate write-suites"


# ------------------------------------------------------------------------- raw rules
@dataclass(frozen=True)
class VolumeBand:
    """The batch's row count must lie within low..high x the median of the row counts of
    up to `lookback` previous successful batches (the first, full-sync batch of an
    incremental table excluded); skipped with fewer than `min_history` such batches."""

    low: float = 0.6
    high: float = 3.0
    lookback: int = 7
    min_history: int = 2
    blocking: bool = True


@dataclass(frozen=True)
class Freshness:
    """The newest `column` value must be at most `limit` older than the end of the
    logical date."""

    column: str
    limit: timedelta


@dataclass(frozen=True)
class Bounds:
    column: str
    min_value: int | None = 0
    max_value: int | None = None


@dataclass(frozen=True)
class RawRules:
    freshness: Freshness | None = None
    volume: VolumeBand | None = None
    bounds: tuple[Bounds, ...] = ()
    # Columns holding ';'-separated codes, each of which must be accepted.
    code_lists: tuple[tuple[str, tuple[str, ...]], ...] = ()


# Snapshots are landed in full every night: their size only drifts, so a band violation
# is data loss and blocks. Incremental batches follow the business's days (weekends,
# holidays), so for them a band violation is reported as a warning.
SNAPSHOT = VolumeBand()
INCREMENTAL = VolumeBand(blocking=False)


def _days(n: int) -> timedelta:
    return timedelta(days=n)


# Freshness limits: tight on the busy tables (activities, tickets, invoices, charges: a
# stalled source shows within days), a month and a few days on usage snapshots (synced
# once a month, at month end: a tighter limit fails every night after the 7th), loose on
# master data, which a small
# business may leave unchanged for weeks (a few hundred accounts: up to ~45 days without
# an edit); None for sparse tables (disputes, refunds, survey definitions) and tables
# without a change timestamp.
RAW_RULES: dict[str, RawRules] = {
    "raw_crm.accounts": RawRules(Freshness("updated_at", _days(60)), INCREMENTAL,
                                 (Bounds("employee_count"),)),
    "raw_crm.contacts": RawRules(Freshness("updated_at", _days(30)), INCREMENTAL),
    "raw_crm.deals": RawRules(Freshness("updated_at", _days(14)), INCREMENTAL,
                              (Bounds("amount"), Bounds("seats_sold"))),
    "raw_crm.activities": RawRules(Freshness("updated_at", _days(3)), INCREMENTAL),
    "raw_crm.tickets": RawRules(Freshness("updated_at", _days(3)), INCREMENTAL,
                                (Bounds("csat_score", 1, 5),)),
    "raw_crm.usage_snapshots": RawRules(Freshness("updated_at", _days(35)), INCREMENTAL,
                                        (Bounds("active_users"), Bounds("licensed_seats"))),
    "raw_billing.customers": RawRules(Freshness("created", _days(14)), SNAPSHOT),
    "raw_billing.subscriptions": RawRules(
        Freshness("created", _days(14)), SNAPSHOT,
        (Bounds("discount_percent_off", 0, 100), Bounds("discount_amount_off"))),
    "raw_billing.subscription_items": RawRules(
        Freshness("created", _days(14)), SNAPSHOT,
        (Bounds("unit_amount"), Bounds("quantity"), Bounds("recurring_interval_count", 1))),
    # Invoice subtotal and total may be negative (credit notes, proration credits); what
    # is due or paid may not.
    "raw_billing.invoices": RawRules(
        Freshness("created", _days(3)), INCREMENTAL,
        (Bounds("amount_due"), Bounds("amount_paid"), Bounds("attempt_count"))),
    # A line's amount is negative for proration credits; discounts are positive amounts.
    "raw_billing.invoice_lines": RawRules(
        None, INCREMENTAL,
        (Bounds("discount_amount"), Bounds("quantity"), Bounds("recurring_interval_count", 1))),
    # prices change rarely: no freshness limit
    "raw_billing.prices": RawRules(
        None, SNAPSHOT, (Bounds("unit_amount"), Bounds("recurring_interval_count", 1))),
    "raw_billing.charges": RawRules(Freshness("created", _days(3)), INCREMENTAL,
                                    (Bounds("amount"), Bounds("amount_refunded"))),
    "raw_billing.refunds": RawRules(None, None, (Bounds("amount"),)),
    "raw_billing.disputes": RawRules(None, None, (Bounds("amount"),)),
    "raw_survey.surveys": RawRules(),
    "raw_survey.responses": RawRules(Freshness("submitted_at", _days(7)), INCREMENTAL,
                                     (Bounds("score", 0, 10),)),
    "raw_survey.exit_answers": RawRules(code_lists=(("other_reasons", EXIT_REASON_OPTIONS),)),
}


# ------------------------------------------------------------------------- helpers
def _meta(check: str, rows: str, **extra: Any) -> dict[str, Any]:
    return {"check": check, "rows": rows, **extra}


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _severity(blocking: bool) -> FailureSeverity:
    return FailureSeverity.CRITICAL if blocking else FailureSeverity.WARNING


def _suite(name: str, description: str, expectations: list[Any],
           **meta: Any) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(
        name=name, expectations=expectations,
        meta={"description": description, "generated_by": GENERATED_BY, **meta})
    # Stable ids keep the committed JSON identical from one generation to the next.
    suite.id = str(uuid.uuid5(_IDS, f"suite:{name}"))
    for i, expectation in enumerate(suite.expectations):
        expectation.id = str(uuid.uuid5(_IDS, f"{name}:{i}:{expectation.expectation_type}"))
    return suite


def suite_json(suite: gx.ExpectationSuite) -> str:
    """The suite as the GX expectations store writes it (plus a final newline)."""
    return ExpectationSuiteSchema().dumps(suite, indent=2, sort_keys=True) + "\n"


# ------------------------------------------------------------------------- raw suites
def raw_suite(entity: Entity) -> gx.ExpectationSuite:
    rules = RAW_RULES[entity.raw_table]
    columns = [*entity.column_names, *(name for name, _, _ in LOAD_COLUMNS)]
    exps: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=columns, exact_match=False, meta=_meta("schema", "table"),
            description="Every contract column and load column is present."),
        gxe.ExpectTableColumnsToMatchSet(
            column_set=columns, exact_match=True, severity=FailureSeverity.WARNING,
            meta=_meta("extra_columns", "table"),
            description="No column outside the contract (an extra column is a warning)."),
    ]
    for c in entity.columns:
        if not c.nullable:
            check = "key" if c.name in entity.primary_key else "required"
            exps.append(gxe.ExpectColumnValuesToNotBeNull(column=c.name,
                                                          meta=_meta(check, "batch")))
    if len(entity.primary_key) == 1:
        exps.append(gxe.ExpectColumnValuesToBeUnique(column=entity.primary_key[0],
                                                     meta=_meta("key", "batch")))
    else:
        exps.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(entity.primary_key),
                                                        meta=_meta("key", "batch")))
    for c in entity.columns:
        if c.accepted_values:
            exps.append(gxe.ExpectColumnValuesToBeInSet(
                column=c.name, value_set=list(c.accepted_values),
                meta=_meta("accepted_values", "batch")))
    for column, codes in rules.code_lists:
        alternatives = "|".join(codes)
        exps.append(gxe.ExpectColumnValuesToMatchRegex(
            column=column, regex=f"^({alternatives})(;({alternatives}))*$",
            meta=_meta("accepted_values", "batch")))
    for b in rules.bounds:
        exps.append(gxe.ExpectColumnValuesToBeBetween(
            column=b.column, min_value=b.min_value, max_value=b.max_value,
            meta=_meta("range", "batch")))
    if rules.volume:
        exps.append(_volume_expectation(entity, rules.volume))
    if rules.freshness:
        exps.append(_freshness_expectation(entity, rules.freshness))
    return _suite(entity.raw_table,
                  f"{entity.raw_table}: one load batch against its source contract.",
                  exps, table=entity.raw_table, mode=entity.mode)


def _volume_expectation(entity: Entity, band: VolumeBand) -> Any:
    kind = "snapshot" if entity.mode == "snapshot" else "incremental"
    return gxe.ExpectTableRowCountToBeBetween(
        min_value=_param("volume_min"), max_value=_param("volume_max"),
        severity=_severity(band.blocking),
        meta=_meta("volume", "batch", low=band.low, high=band.high, lookback=band.lookback,
                   min_history=band.min_history),
        description=(f"Rows in the batch within {band.low}x..{band.high}x the median of up to "
                     f"{band.lookback} previous successful {kind} batches "
                     "(raw_meta.load_audit)."))


def _freshness_expectation(entity: Entity, fresh: Freshness) -> Any:
    # A snapshot batch holds the full state; an incremental one only the day's changes.
    rows = "batch" if entity.mode == "snapshot" else "recent"
    hours = int(fresh.limit.total_seconds() // 3600)
    return gxe.ExpectColumnMaxToBeBetween(
        column=fresh.column, min_value=_param("fresh_after"),
        meta=_meta("freshness", rows, limit_hours=hours),
        description=(f"Freshness: the newest {fresh.column} is at most {hours} hours older "
                     "than the end of the logical date."))


# ------------------------------------------------------------------------- mart suites
def _between(column: str, min_value: float | None = 0, max_value: float | None = None,
             check: str = "range") -> Any:
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=min_value,
                                             max_value=max_value, meta=_meta(check, "table"))


def _rows(description: str, query: str, check: str = "reconciliation") -> Any:
    """Cross-row or cross-table check: `query` returns the offending rows. `{batch}` is the
    mart under test; with a JOIN in the query GX leaves aliasing `{batch}` to us."""
    return gxe.UnexpectedRowsExpectation(unexpected_rows_query=" ".join(query.split()),
                                         description=description, meta=_meta(check, "table"))


def _not_empty() -> Any:
    return gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=_meta("volume", "table"))


# The rates of kpi_retention_monthly and the columns they are computed from.
KPI_RATES: tuple[tuple[str, str, str], ...] = (
    ("logo_churn_rate", "logo_churn_rate_numerator", "logo_churn_rate_denominator"),
    ("gross_mrr_churn_rate", "gross_mrr_churn_rate_numerator",
     "gross_mrr_churn_rate_denominator"),
    ("net_mrr_churn_rate", "net_mrr_churn_rate_numerator", "net_mrr_churn_rate_denominator"),
    ("quick_ratio", "quick_ratio_numerator", "quick_ratio_denominator"),
    ("grr_t12", "grr_t12_numerator", "grr_t12_denominator"),
    ("nrr_t12", "nrr_t12_numerator", "nrr_t12_denominator"),
    ("feedback_coverage", "feedback_coverage_numerator", "feedback_coverage_denominator"),
    ("evidence_coverage", "evidence_coverage_numerator", "evidence_coverage_denominator"),
    ("win_back_rate", "win_back_rate_numerator", "win_back_rate_denominator"),
)
# Bounds that hold by construction. Churned plus contracted MRR never exceeds the MRR at
# the start of the month, so gross and net MRR churn are at most 1; net churn goes below
# 0 with expansion, NRR above 1, and the quick ratio has no upper bound.
KPI_BOUNDS: tuple[tuple[str, float | None, float | None], ...] = (
    ("logo_churn_rate", 0, 1), ("gross_mrr_churn_rate", 0, 1), ("net_mrr_churn_rate", None, 1),
    ("quick_ratio", 0, None), ("grr_t12", 0, 1), ("nrr_t12", 0, None),
    ("feedback_coverage", 0, 1), ("evidence_coverage", 0, 1), ("win_back_rate", 0, 1),
)


def _kpi_rates_query() -> str:
    wrong = " or ".join(
        f"(({rate} is null) <> (nullif({den}, 0) is null) "
        f"or abs({rate} - {num}::numeric / nullif({den}, 0)) > 1e-12)"
        for rate, num, den in KPI_RATES)
    # Rates are shown as float8: numeric's 20 decimals do not survive JSON anyway.
    shown = ", ".join(f"{r}::float8 as {r}" for r, _, _ in KPI_RATES)
    return f"select month, {shown} from {{batch}} where {wrong}"


KPI_MOVEMENTS_QUERY = """
select coalesce(k.month, m.month) as month,
       k.churned_customers, m.churned_customers as movement_churned_customers,
       k.churned_mrr, m.churned_mrr as movement_churned_mrr,
       k.contraction_mrr, m.contraction_mrr as movement_contraction_mrr,
       k.new_mrr, m.new_mrr as movement_new_mrr,
       k.expansion_mrr, m.expansion_mrr as movement_expansion_mrr,
       k.reactivation_mrr, m.reactivation_mrr as movement_reactivation_mrr
from {batch} as k
full join (
    select month,
           count(*) filter (where movement_category = 'churn') as churned_customers,
           count(*) filter (where movement_category = 'new') as new_customers,
           count(*) filter (where movement_category = 'reactivation') as reactivated_customers,
           coalesce(-sum(mrr_delta) filter (where movement_category = 'churn'), 0)
               as churned_mrr,
           coalesce(-sum(mrr_delta) filter (where movement_category = 'contraction'), 0)
               as contraction_mrr,
           coalesce(sum(mrr_delta) filter (where movement_category = 'new'), 0) as new_mrr,
           coalesce(sum(mrr_delta) filter (where movement_category = 'expansion'), 0)
               as expansion_mrr,
           coalesce(sum(mrr_delta) filter (where movement_category = 'reactivation'), 0)
               as reactivation_mrr
    from fct_mrr_movements
    group by month
) as m on m.month = k.month
where k.month is null
   or k.churned_customers <> coalesce(m.churned_customers, 0)
   or k.new_customers <> coalesce(m.new_customers, 0)
   or k.reactivated_customers <> coalesce(m.reactivated_customers, 0)
   or k.churned_mrr <> coalesce(m.churned_mrr, 0)
   or k.contraction_mrr <> coalesce(m.contraction_mrr, 0)
   or k.new_mrr <> coalesce(m.new_mrr, 0)
   or k.expansion_mrr <> coalesce(m.expansion_mrr, 0)
   or k.reactivation_mrr <> coalesce(m.reactivation_mrr, 0)
   or k.logo_churn_rate_numerator <> k.churned_customers
   or k.gross_mrr_churn_rate_numerator <> k.churned_mrr + k.contraction_mrr
   or k.quick_ratio_numerator <> k.new_mrr + k.expansion_mrr + k.reactivation_mrr
   or k.quick_ratio_denominator <> k.churned_mrr + k.contraction_mrr
"""

KPI_BRIDGE_QUERY = """
select month, mrr_start, new_mrr, expansion_mrr, reactivation_mrr, contraction_mrr,
       churned_mrr, mrr_end, previous_mrr_end
from (select *, lag(mrr_end) over (order by month) as previous_mrr_end from {batch}) as kpi
where mrr_end <> mrr_start + new_mrr + expansion_mrr + reactivation_mrr
                 - contraction_mrr - churned_mrr
   or mrr_start <> coalesce(previous_mrr_end, mrr_start)
"""

KPI_MISSING_MONTHS_QUERY = """
select expected.month as missing_month
from (select generate_series(min(month), max(month), interval '1 month')::date as month
      from {batch} as bounds) as expected
left join {batch} as present on present.month = expected.month
where present.month is null
"""

KPI_DEFECTIONS_QUERY = """
select coalesce(k.month, d.month) as month, k.defections, d.defections as fct_defections,
       k.defections_lost_mrr, d.lost_mrr as fct_defections_lost_mrr
from {batch} as k
full join (select defection_month as month, count(*) as defections, sum(lost_mrr) as lost_mrr
           from fct_defections group by defection_month) as d on d.month = k.month
where coalesce(k.defections, 0) <> coalesce(d.defections, 0)
   or coalesce(k.defections_lost_mrr, 0) <> coalesce(d.lost_mrr, 0)
"""

HAS_EVIDENCE_QUERY = """
select d.defection_id, d.has_evidence, c.causes
from {batch} as d
left join (select defection_id, string_agg(cause_id, ',' order by cause_id) as causes
           from fct_defection_causes group by defection_id) as c
    on c.defection_id = d.defection_id
where d.has_evidence = (coalesce(c.causes, 'unexplained') = 'unexplained')
"""

WEIGHTS_SUM_QUERY = """
select defection_id, sum(weight)::float8 as weight_sum, count(*) as causes
from {batch}
group by defection_id
having sum(weight) <> 1
"""

CAUSES_COVER_DEFECTIONS_QUERY = """
select d.defection_id
from fct_defections as d
left join {batch} as c on c.defection_id = d.defection_id
where c.defection_id is null
"""

ATTRIBUTION_QUERY = """
select coalesce(a.defection_month, d.defection_month) as defection_month,
       a.lost_mrr_attributed::float8, d.lost_mrr as defections_lost_mrr,
       a.defections_attributed::float8, d.defections
from (select defection_month, sum(lost_mrr_attributed) as lost_mrr_attributed,
             sum(defections_attributed) as defections_attributed
      from {batch} as attribution group by defection_month) as a
full join (select defection_month, sum(lost_mrr) as lost_mrr, count(*) as defections
           from fct_defections group by defection_month) as d
    on d.defection_month = a.defection_month
where a.lost_mrr_attributed is distinct from d.lost_mrr::numeric
   or a.defections_attributed is distinct from d.defections::numeric
"""

MOVEMENTS_QUERY = """
select customer_id, month, movement_category, previous_mrr, current_mrr, mrr_delta
from {batch}
where mrr_delta <> current_mrr - previous_mrr
   or (movement_category in ('churn', 'contraction') and mrr_delta >= 0)
   or (movement_category in ('new', 'expansion', 'reactivation') and mrr_delta <= 0)
   or (movement_category = 'churn' and current_mrr <> 0)
   or (movement_category in ('new', 'reactivation') and previous_mrr <> 0)
"""

# Invoice lines whose billed currency has no rate to the reporting currency for the month
# the line's service period starts (seed fx_rates_monthly): their MRR would be missing
# from the marts. The converted lines live in the intermediate layer, which the marts are
# built from in the same run; {batch} counts the mart's customers that are affected.
FX_RATES_QUERY = """
select lines.currency, lines.fx_month as month, lines.reporting_currency,
       count(*) as invoice_lines, count(distinct lines.customer_id) as customers,
       count(distinct lines.customer_id) filter (
           where lines.customer_id in (select customer_id from {batch})) as customers_in_mart
from intermediate.int_revenue__invoice_line_mrr as lines
where lines.fx_rate is null
group by lines.currency, lines.fx_month, lines.reporting_currency
order by lines.fx_month, lines.currency
"""

# Month-end MRR and paying customers are the month's snapshot in fct_customer_mrr_monthly;
# the start of a month (MRR and the logo churn denominator) is the previous month's.
KPI_SNAPSHOTS_QUERY = """
select k.month, k.mrr_start, k.mrr_end, k.paying_customers_end,
       k.logo_churn_rate_denominator, current_end.mrr as snapshot_mrr_end,
       current_end.paying_customers as snapshot_paying_customers_end,
       previous_end.mrr as snapshot_mrr_start,
       previous_end.paying_customers as snapshot_paying_customers_start
from {batch} as k
left join (select month, sum(mrr) as mrr, count(*) filter (where is_active) as paying_customers
           from fct_customer_mrr_monthly group by month) as current_end
    on current_end.month = k.month
left join (select month, sum(mrr) as mrr, count(*) filter (where is_active) as paying_customers
           from fct_customer_mrr_monthly group by month) as previous_end
    on previous_end.month = (k.month - interval '1 month')::date
where k.mrr_end <> coalesce(current_end.mrr, 0)
   or k.paying_customers_end <> coalesce(current_end.paying_customers, 0)
   or k.mrr_start <> coalesce(previous_end.mrr, 0)
   or k.logo_churn_rate_denominator <> coalesce(previous_end.paying_customers, 0)
"""

ACTIVE_FLAG_QUERY = """
select customer_id, month, mrr, is_active from {batch} where is_active <> (mrr > 0)
"""

COHORT_START_QUERY = """
select cohort_month, cohort_customers, active_customers, cohort_starting_mrr, mrr
from {batch}
where months_since_start = 0
  and (active_customers <> cohort_customers or mrr <> cohort_starting_mrr)
"""


# Each lift lies within its interval, and hits never exceed the checkpoints they are of.
SIGNAL_LIFT_QUERY = """
select signal_id, segment, leaver_hits, leaver_checkpoints, stayer_hits, stayer_checkpoints,
       lift::float8, lift_ci_low::float8, lift_ci_high::float8
from {batch}
where leaver_hits > leaver_checkpoints
   or stayer_hits > stayer_checkpoints
   or lift < lift_ci_low
   or lift > lift_ci_high
   or strength <> seed_strength * strength_multiplier
"""

BACKTEST_RATES: tuple[tuple[str, str, str], ...] = (
    ("precision", "precision_numerator", "precision_denominator"),
    ("recall", "recall_numerator", "recall_denominator"),
    ("base_rate", "base_rate_numerator", "base_rate_denominator"),
)


def _backtest_rates_query() -> str:
    wrong = " or ".join(
        f"(({rate} is null) <> (nullif({den}, 0) is null) "
        f"or abs({rate} - {num}::numeric / nullif({den}, 0)) > 1e-12)"
        for rate, num, den in BACKTEST_RATES)
    shown = ", ".join(f"{r}::float8 as {r}" for r, _, _ in BACKTEST_RATES)
    return (f"select backtest_as_of_date, {shown} from {{batch}} where {wrong} "
            "or precision_numerator <> flagged_defected_customers "
            "or precision_denominator <> flagged_customers "
            "or recall_denominator <> defected_customers "
            "or base_rate_denominator <> scored_customers")


def mart_suites() -> list[gx.ExpectationSuite]:
    specs: dict[str, list[Any]] = {
        "dim_customers": [
            _not_empty(),
            _between("current_mrr"),
        ],
        "fct_customer_mrr_monthly": [
            _not_empty(), _between("mrr"),
            _rows("is_active is true exactly when the month's MRR is positive.",
                  ACTIVE_FLAG_QUERY),
            _rows("Every currency billed has a rate to the reporting currency for each month "
                  "it is billed in (seed fx_rates_monthly); each row names a currency and "
                  "month without one.", FX_RATES_QUERY, "fx_rates"),
        ],
        "fct_mrr_movements": [
            _rows("Each movement's delta is current minus previous MRR, with the sign its "
                  "category implies.", MOVEMENTS_QUERY),
        ],
        "fct_defections": [
            _between("lost_mrr"), _between("tenure_days"),
            _between("attribution_margin", 0, 1), _between("evidence_family_coverage", 0, 1),
            _rows("has_evidence is false exactly when the defection's only cause is "
                  "unexplained.", HAS_EVIDENCE_QUERY),
        ],
        "fct_defection_causes": [
            _between("weight", 0, 1),
            _rows("The cause weights of each defection sum to 1.", WEIGHTS_SUM_QUERY,
                  "weights"),
            _rows("Every defection of fct_defections has at least one cause row.",
                  CAUSES_COVER_DEFECTIONS_QUERY),
        ],
        "mart_cause_attribution": [
            _between("defections_attributed"), _between("lost_mrr_attributed"),
            _between("share_of_month_defections", 0, 1),
            _between("share_of_month_lost_mrr", 0, 1),
            _between("month_feedback_coverage", 0, 1),
            _between("month_evidence_coverage", 0, 1),
            _rows("Per month, attributed lost MRR equals the lost MRR of the month's "
                  "defections, and attributed defections their number.", ATTRIBUTION_QUERY),
        ],
        "kpi_retention_monthly": [
            _not_empty(),
            *(_between(rate, low, high) for rate, low, high in KPI_BOUNDS),
            _rows("Every rate equals its numerator over its denominator (null when that is "
                  "0).", _kpi_rates_query()),
            _rows("Churned, contraction, expansion, new and reactivation MRR and customer "
                  "counts equal the month's sums of fct_mrr_movements.", KPI_MOVEMENTS_QUERY),
            _rows("Month-end MRR and paying customers equal the month's snapshot in "
                  "fct_customer_mrr_monthly; start MRR and the logo churn denominator equal "
                  "the previous month's.", KPI_SNAPSHOTS_QUERY),
            _rows("MRR bridge: start + new + expansion + reactivation - contraction - churn "
                  "= end, and each month starts where the previous one ended.",
                  KPI_BRIDGE_QUERY),
            _rows("Defections and their lost MRR equal fct_defections per month.",
                  KPI_DEFECTIONS_QUERY),
            _rows("No calendar month is missing between the first and the last month.",
                  KPI_MISSING_MONTHS_QUERY, "missing_months"),
            gxe.ExpectColumnMaxToBeBetween(
                column="month", min_value=_param("as_of_month"),
                max_value=_param("as_of_month"), meta=_meta("as_of", "table"),
                description="The last month is the month of the as-of date."),
        ],
        "kpi_cohort_retention": [
            _between("months_since_start"), _between("logo_retention", 0, 1),
            _between("revenue_retention"),
            _rows("In its first month a cohort is entirely active with all of its MRR.",
                  COHORT_START_QUERY),
        ],
        "mart_accounts_at_risk": [
            _between("mrr_at_risk"),
            _between("top_cause_weight", 0, 1),
            _between("risk_lift", 1),
            gxe.ExpectColumnValuesToBeBetween(
                column="as_of_date", min_value=_param("as_of_date"),
                max_value=_param("as_of_date"), meta=_meta("as_of", "table"),
                description="Signals are evaluated at the as-of date."),
        ],
        "mart_signal_lift": [
            _not_empty(),
            _between("leaver_rate", 0, 1), _between("stayer_rate", 0, 1),
            _between("lift", 0), _between("calibrated_lift", 0), _between("strength", 0),
            _rows("Hits are at most the checkpoints compared, every lift lies within its "
                  "95% interval, and the strength is the seed's times the multiplier.",
                  SIGNAL_LIFT_QUERY),
        ],
        "kpi_at_risk_backtest": [
            _between("precision", 0, 1), _between("recall", 0, 1),
            _between("base_rate", 0, 1), _between("flagged_share", 0, 1),
            _between("lift", 0),
            _rows("Precision, recall and the base rate equal their numerators over their "
                  "denominators, which are the counts of the row.", _backtest_rates_query()),
        ],
    }
    return [_suite(MART_PREFIX + model, f"Built mart {model} (build schema).", exps,
                   table=model)
            for model, exps in specs.items()]


def raw_suites() -> list[gx.ExpectationSuite]:
    return [raw_suite(e) for e in ENTITIES]


def all_suites() -> list[gx.ExpectationSuite]:
    return [*raw_suites(), *mart_suites()]
