"""Reads the published marts for the report and the digests.

Every query reads the published schema (`analytics` by default) and nothing else: the
report shows the marts' own numbers, so a figure on a page equals the row it came from.
Derived figures (a cause's trailing average, sums over segments) are sums and means of
mart columns, never recomputed KPIs.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from defection_warehouse.db import connect

Row = dict[str, Any]

TREND_MONTHS = 24  # months of history the charts show
TRAILING_MONTHS = 3  # a cause's trend compares its month with the mean of the 3 before
TREND_BAND = Decimal("0.10")  # within +-10% of the trailing mean the trend is "flat"


class ReportDataError(RuntimeError):
    """The published schema cannot give the report (not published yet, another date)."""


@dataclass(frozen=True)
class CauseTrend:
    cause_id: str
    cause_label: str
    owning_function: str
    month: date
    lost_mrr: Decimal  # cents, the month's lost_mrr_attributed over every segment
    defections: Decimal  # the month's defections_attributed over every segment
    trailing_mean: Decimal | None  # mean lost MRR of the TRAILING_MONTHS months before
    direction: str  # rising, falling, flat or new

    @property
    def arrow(self) -> str:
        return {"rising": "\u25b2", "falling": "\u25bc", "flat": "\u25b6"}.get(
            self.direction, "\u2022")


@dataclass(frozen=True)
class ReportData:
    schema: str
    as_of_date: date
    focus_month: date  # the latest complete month (the as-of month when it ends that day)
    kpis: list[Row]  # kpi_retention_monthly, the last TREND_MONTHS months, oldest first
    attribution: list[Row]  # mart_cause_attribution by month x cause (segments summed)
    cause_trends: list[CauseTrend]  # for the focus month, by falling lost MRR
    cohorts: list[Row]  # kpi_cohort_retention of the last TREND_MONTHS cohorts
    at_risk: list[Row]  # mart_accounts_at_risk, by falling MRR at risk

    @property
    def focus_kpi(self) -> Row:
        return next(k for k in self.kpis if k["month"] == self.focus_month)


def focus_month(as_of_date: date) -> date:
    """The month the headline figures describe: the as-of month when the as-of date is
    its last day, else the month before (a month in progress is not compared)."""
    last_day = calendar.monthrange(as_of_date.year, as_of_date.month)[1]
    if as_of_date.day == last_day:
        return as_of_date.replace(day=1)
    return (as_of_date.replace(day=1) - timedelta(days=1)).replace(day=1)


def _rows(conn: psycopg.Connection, query: str, schema: str,
          params: Sequence[Any] = ()) -> list[Row]:
    composed = sql.SQL(query).format(schema=sql.Identifier(schema))
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(composed, params).fetchall()


def published_as_of(conn: psycopg.Connection, schema: str) -> date:
    """The as-of date of the marts in `schema` (its newest kpi_history generation)."""
    try:
        rows = _rows(conn, "select as_of_date from {schema}.kpi_history "
                           "order by published_at desc limit 1", schema)
    except psycopg.errors.UndefinedTable:
        raise ReportDataError(f"{schema}.kpi_history does not exist: nothing is published "
                              "yet (run the nightly DAG or `dw demo` first)") from None
    if not rows:
        raise ReportDataError(f"{schema}.kpi_history is empty: nothing is published yet")
    return rows[0]["as_of_date"]


def _add_months(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def trend_direction(value: Decimal, trailing_mean: Decimal | None) -> str:
    """rising or falling when `value` is more than TREND_BAND above or below the trailing
    mean, else flat; new without months before."""
    if trailing_mean is None:
        return "new"
    if value > trailing_mean * (1 + TREND_BAND):
        return "rising"
    if value < trailing_mean * (1 - TREND_BAND):
        return "falling"
    return "flat"


def cause_trends(attribution: Sequence[Row], month: date) -> list[CauseTrend]:
    """Each cause's lost MRR in `month` against the mean of the TRAILING_MONTHS before it
    (a month without attribution counts as 0)."""
    first = min((r["defection_month"] for r in attribution), default=month)
    before = [m for m in (_add_months(month, -i) for i in range(TRAILING_MONTHS, 0, -1))
              if m >= first]  # calendar months: a month without defections counts as 0
    by_cause: dict[str, dict[date, Row]] = {}
    for r in attribution:
        by_cause.setdefault(r["cause_id"], {})[r["defection_month"]] = r
    trends = []
    for cause_id, per_month in by_cause.items():
        any_row = next(iter(per_month.values()))
        now = per_month.get(month)
        lost = now["lost_mrr"] if now else Decimal(0)
        mean = (sum((per_month[m]["lost_mrr"] if m in per_month else Decimal(0)
                     for m in before), Decimal(0)) / len(before)) if before else None
        trends.append(CauseTrend(
            cause_id=cause_id, cause_label=any_row["cause_label"],
            owning_function=any_row["owning_function"], month=month, lost_mrr=lost,
            defections=now["defections"] if now else Decimal(0), trailing_mean=mean,
            direction=trend_direction(lost, mean)))
    return sorted(trends, key=lambda t: (-t.lost_mrr, t.cause_id))


def load_report_data(warehouse_url: str, schema: str = "analytics",
                     as_of: date | None = None) -> ReportData:
    """Everything the report shows, from the published schema `schema`. With `as_of`,
    raises ReportDataError unless the published marts are as of that date."""
    with connect(warehouse_url) as conn:
        published = published_as_of(conn, schema)
        if as_of is not None and as_of != published:
            raise ReportDataError(f"{schema} holds the marts as of {published}, not {as_of}; "
                                  "a report is built from the published night")
        focus = focus_month(published)
        kpis = _rows(conn, "select * from {schema}.kpi_retention_monthly "
                           "where month > %s::date - make_interval(months => %s) "
                           "order by month", schema,
                     (published.replace(day=1), TREND_MONTHS))
        attribution = _rows(conn, """
            select defection_month, cause_id, cause_label, owning_function,
                   sum(lost_mrr_attributed) as lost_mrr,
                   sum(defections_attributed) as defections
            from {schema}.mart_cause_attribution
            where defection_month > %s::date - make_interval(months => %s)
            group by defection_month, cause_id, cause_label, owning_function
            order by defection_month, cause_id""", schema,
                            (published.replace(day=1), TREND_MONTHS))
        cohorts = _rows(conn, """
            select cohort_month, months_since_start, cohort_customers, active_customers,
                   logo_retention, cohort_starting_mrr, mrr, revenue_retention
            from {schema}.kpi_cohort_retention
            where cohort_month > %s::date - make_interval(months => %s)
            order by cohort_month, months_since_start""", schema,
                        (published.replace(day=1), TREND_MONTHS))
        at_risk = _rows(conn, """
            select customer_id, account_name, segment, owner, mrr_at_risk, signal_count,
                   causes, top_cause, top_cause_weight, owning_function, recommended_fix
            from {schema}.mart_accounts_at_risk
            order by mrr_at_risk desc, customer_id""", schema)
    if not any(k["month"] == focus for k in kpis):
        raise ReportDataError(f"{schema}.kpi_retention_monthly has no row for {focus:%Y-%m}")
    return ReportData(schema=schema, as_of_date=published, focus_month=focus, kpis=kpis,
                      attribution=attribution, cause_trends=cause_trends(attribution, focus),
                      cohorts=cohorts, at_risk=at_risk)
