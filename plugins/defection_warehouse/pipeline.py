"""What the nightly DAG's tasks do, callable without Airflow (tests, the CLI, backfills).

Each step is keyed on the logical date (the data interval's start day) and is idempotent:
extracts reuse a committed landing batch unless forced, loads replace the date's batch,
dbt builds the marts in the build schema (kept from night to night), and publish swaps it
with the published schema only after both quality gates passed (write-audit-publish).
``run_night`` chains the steps in the DAG's order without Airflow and reports which step
failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from defection_warehouse.config import Settings
from defection_warehouse.load.raw_loader import RawLoader
from defection_warehouse.sources.landing import LandingZone

log = logging.getLogger(__name__)

# The DAG's order; run_night follows it and names the step that failed.
STEPS = ("extract", "load", "validate_raw", "transform", "validate_build", "publish")


@dataclass(frozen=True)
class Endpoints:
    """Where the sources and the warehouse are, resolved from Airflow connections or env."""

    warehouse_url: str
    crm_url: str | None  # None when the CRM is not connected
    billing_url: str
    billing_api_key: str


def extract(source: str, logical_date: date, endpoints: Endpoints, settings: Settings,
            *, force: bool = False, progress: Callable[[str], None] | None = None,
            ) -> dict[str, Any]:
    zone = LandingZone(settings.landing_url)
    if source == "crm":
        from defection_warehouse.sources.crm import extract_crm

        if not endpoints.crm_url:
            raise ValueError("the CRM is among the connected sources but no CRM database is "
                             "configured (CRM_URL, or the Airflow connection crm_db); leave "
                             "crm out of DW_SOURCES if the business has no CRM")

        manifest = extract_crm(zone, logical_date, endpoints.crm_url,
                               overlap_minutes=settings.crm_overlap_minutes, force=force,
                               progress=progress)
    elif source == "billing":
        from defection_warehouse.sources.billing import extract_billing

        manifest = extract_billing(zone, logical_date, endpoints.billing_url,
                                   endpoints.billing_api_key, force=force, progress=progress,
                                   api_version=settings.billing_api_version)
    elif source == "survey":
        from defection_warehouse.sources.survey import extract_survey

        manifest = extract_survey(zone, logical_date, settings.survey_inbox, force=force,
                                  progress=progress)
    else:
        raise ValueError(f"unknown source {source!r}")
    return {"source": source, "logical_date": logical_date.isoformat(),
            "rows": manifest.total_rows, "files": len(manifest.files),
            "window": manifest.extract_window}


def load(source: str, logical_date: date, endpoints: Endpoints, settings: Settings,
         *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    loader = RawLoader(endpoints.warehouse_url, LandingZone(settings.landing_url),
                       max_quarantine_share=settings.quarantine_max_share,
                       min_quarantine_rows=settings.quarantine_min_rows, progress=progress)
    result = loader.load(source, logical_date)
    return {"source": source, "batch_id": result.batch_id, "rows_in": result.rows_in,
            "rows_loaded": result.rows_loaded, "rows_quarantined": result.rows_quarantined,
            "seconds": round(result.seconds, 2)}


def skip_source(source: str, endpoints: Endpoints, settings: Settings, *,
                sources: Sequence[str]) -> dict[str, Any]:
    """A source the business has not connected: nothing is extracted, loaded or gated,
    but its raw tables exist (empty unless an earlier load filled them), so every model
    builds and every rule that needs the source finds no data and does not fire."""
    loader = RawLoader(endpoints.warehouse_url, LandingZone(settings.landing_url),
                       max_quarantine_share=settings.quarantine_max_share,
                       min_quarantine_rows=settings.quarantine_min_rows)
    loader.ensure_source_tables(source)
    return {"source": source, "skipped": True,
            "reason": f"{source} is not connected (connected sources: {', '.join(sources)})"}


def sources_line(sources: Sequence[str]) -> str:
    """One line for a run's summary: which sources were read and which were skipped."""
    from defection_warehouse.config import ALL_SOURCES

    absent = [s for s in ALL_SOURCES if s not in sources]
    line = f"Sources: {', '.join(sources)} connected"
    if absent:
        line += (f"; {', '.join(absent)} not connected (skipped: no extract, load or gate; "
                 "rules that need them do not fire)")
    return line


def validate_raw(logical_date: date, endpoints: Endpoints, *, run_id: str,
                 sources: Sequence[str]) -> str:
    """The raw quality gate on the day's batches of the connected `sources`; raises
    QualityGateFailed (blocking)."""
    from defection_warehouse.quality.gate import validate_raw as gate

    return gate(endpoints.warehouse_url, logical_date, run_id=run_id,
                sources=sources).summary()


def ensure_build_schema(warehouse_url: str, settings: Settings) -> None:
    """Run before every dbt build: create the build schema if it is missing. What it holds
    is kept (dbt replaces each mart), and the
    mark of the publish that swapped it out is cleared so the new build can be published.
    Relations that are not marts of the build are dropped by publish, not here."""
    from defection_warehouse.publish.swap import ensure_build_schema as ensure

    ensure(warehouse_url, settings.build_schema)


def transform(logical_date: date, endpoints: Endpoints, settings: Settings, *,
              full_refresh: bool = False) -> None:
    """dbt build of every model and test: staging and intermediate in their own schemas,
    the marts in the build schema."""
    from defection_warehouse.transform.dbt_runner import nightly_build

    ensure_build_schema(endpoints.warehouse_url, settings)
    nightly_build(endpoints.warehouse_url, schema=settings.build_schema, as_of=logical_date,
                  full_refresh=full_refresh)


def validate_build(logical_date: date, endpoints: Endpoints, settings: Settings, *,
                   run_id: str) -> str:
    """The quality gate on the built marts; raises QualityGateFailed (blocks publish)."""
    from defection_warehouse.quality.gate import validate_build as gate

    return gate(endpoints.warehouse_url, settings.build_schema, logical_date,
                run_id=run_id).summary()


def publish(logical_date: date, endpoints: Endpoints, settings: Settings, *,
            run_id: str) -> str:
    """Swap the validated build schema with the published schema in one transaction."""
    from defection_warehouse.publish.swap import publish as swap

    result = swap(endpoints.warehouse_url, build_schema=settings.build_schema,
                  publish_schema=settings.publish_schema, run_id=run_id,
                  as_of_date=logical_date)
    return result.summary()


class StepFailed(RuntimeError):
    """A night stopped at `step`; the cause's message says what was wrong."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"step {step} failed: {type(cause).__name__}: {cause}")
        self.step = step
        self.cause = cause


def run_night(logical_date: date, endpoints: Endpoints, settings: Settings, *,
              run_id: str | None = None, full_refresh: bool = False,
              reextract: bool = False, steps: Sequence[str] = STEPS,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The steps of the nightly DAG for one day (all by default; a subset resumes a night
    from a step), in the DAG's order, without Airflow. Raises StepFailed naming the step;
    nothing is published unless every gate passed. Only the connected sources
    (settings.sources) are extracted, loaded and gated."""
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown step(s) {sorted(unknown)}; the steps are {STEPS}")
    say = progress or (lambda message: None)
    run_id = run_id or f"local__{logical_date.isoformat()}"
    done: dict[str, Any] = {"run_id": run_id, "logical_date": logical_date.isoformat(),
                            "step_seconds": {}}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        if name not in steps:
            return None
        say(f"{name} ...")
        started = time.perf_counter()
        try:
            out = fn()
        except Exception as exc:
            raise StepFailed(name, exc) from exc
        done[name] = out
        done["step_seconds"][name] = round(time.perf_counter() - started, 2)
        return out

    connected = settings.sources
    done["skipped_sources"] = [skip_source(s, endpoints, settings, sources=connected)
                               for s in settings.absent_sources]
    say(sources_line(connected))
    step("extract", lambda: [extract(s, logical_date, endpoints, settings,
                                     force=reextract, progress=progress)
                             for s in connected])
    step("load", lambda: [load(s, logical_date, endpoints, settings, progress=progress)
                          for s in connected])
    step("validate_raw", lambda: validate_raw(logical_date, endpoints, run_id=run_id,
                                              sources=connected))
    step("transform", lambda: transform(logical_date, endpoints, settings,
                                        full_refresh=full_refresh))
    step("validate_build", lambda: validate_build(logical_date, endpoints, settings,
                                                  run_id=run_id))
    step("publish", lambda: publish(logical_date, endpoints, settings, run_id=run_id))
    return done


def raw_summary(warehouse_url: str, logical_date: date) -> list[tuple[str, int, int]]:
    """(table, rows in the date's batch, rows in total) for every raw table."""
    from psycopg import sql

    from defection_warehouse.db import connect, one_row, qualified
    from defection_warehouse.sources.contracts import ENTITIES

    out = []
    with connect(warehouse_url) as conn:
        for e in ENTITIES:
            batch, total = one_row(conn.execute(
                sql.SQL("select count(*) filter (where _logical_date = %s), count(*) "
                        "from {}").format(qualified(e.raw_table)), (logical_date,)))
            out.append((e.raw_table, batch, total))
    return out


def format_raw_summary(rows: list[tuple[str, int, int]], logical_date: date) -> str:
    width = max(len(t) for t, _, _ in rows)
    lines = [f"Raw layer after the {logical_date} batch:",
             f"  {'table':<{width}}  {'this batch':>10}  {'all batches':>11}"]
    lines += [f"  {t:<{width}}  {b:>10,}  {n:>11,}" for t, b, n in rows]
    return "\n".join(lines)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def kpi_summary(warehouse_url: str, schema: str | None = None, months: int = 3) -> str:
    """The last months' KPIs and the top causes of lost MRR over the last 12 months."""
    from psycopg import sql

    from defection_warehouse.db import connect

    schema = schema or Settings.from_env().publish_schema
    with connect(warehouse_url) as conn:
        kpis = conn.execute(sql.SQL(
            "select month, paying_customers_start, churned_customers, logo_churn_rate, "
            "gross_mrr_churn_rate, net_mrr_churn_rate, quick_ratio, grr_t12, nrr_t12, "
            "defections, feedback_coverage, evidence_coverage, mrr_end "
            "from {}.kpi_retention_monthly order by month desc limit %s").format(
                sql.Identifier(schema)), (months,)).fetchall()
        causes = conn.execute(sql.SQL(
            "select cause_id, owning_function, sum(lost_mrr_attributed) as lost, "
            "sum(defections_attributed) as defections "
            "from {}.mart_cause_attribution "
            "where defection_month > (select max(month) from {}.kpi_retention_monthly) "
            "- interval '12 months' group by 1, 2 order by lost desc").format(
                sql.Identifier(schema), sql.Identifier(schema))).fetchall()
    lines = ["Retention KPIs (latest month first; MRR in currency units):",
             f"  {'month':<8} {'paying':>7} {'churned':>7} {'logo':>6} {'gross':>6} "
             f"{'net':>6} {'quick':>6} {'GRR12':>6} {'NRR12':>6} {'feedbk':>6} {'evidnc':>6} "
             f"{'MRR':>11}"]
    for (month, paying, churned, logo, gross, net, quick, grr, nrr, _defs, fb, ev,
         mrr) in kpis:
        lines.append(
            f"  {month:%Y-%m}  {paying:>7,} {churned:>7,} {_pct(logo):>6} {_pct(gross):>6} "
            f"{_pct(net):>6} {'-' if quick is None else f'{float(quick):.2f}':>6} "
            f"{_pct(grr):>6} {_pct(nrr):>6} {_pct(fb):>6} {_pct(ev):>6} {mrr / 100:>11,.0f}")
    total = sum(float(c[2] or 0) for c in causes) or 1.0
    lines += ["", "Top causes of lost MRR, last 12 months:",
              f"  {'cause':<20} {'owner':<22} {'lost MRR':>10} {'share':>6} {'defections':>10}"]
    for cause, owner, lost, defections in causes[:6]:
        lines.append(f"  {cause:<20} {owner or '-':<22} {float(lost or 0) / 100:>10,.0f} "
                     f"{float(lost or 0) / total:>6.1%} {float(defections):>10.1f}")
    return "\n".join(lines)
