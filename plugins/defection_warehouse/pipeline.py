"""What the nightly DAG's tasks do, callable without Airflow (tests, the CLI, backfills).

Each step is keyed on the logical date (the data interval's start day) and is idempotent:
extracts reuse a committed landing batch unless forced, loads replace the date's batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from defection_warehouse.config import Settings
from defection_warehouse.landing import LandingZone
from defection_warehouse.raw_loader import RawLoader

log = logging.getLogger(__name__)

SOURCES = ("crm", "billing", "survey")


@dataclass(frozen=True)
class Endpoints:
    """Where the sources and the warehouse are, resolved from Airflow connections or env."""

    warehouse_url: str
    crm_url: str
    billing_url: str
    billing_api_key: str


def extract(source: str, logical_date: date, endpoints: Endpoints, settings: Settings,
            *, force: bool = False, progress: Callable[[str], None] | None = None,
            ) -> dict[str, Any]:
    zone = LandingZone(settings.landing_url)
    if source == "crm":
        from defection_warehouse.extract.crm import extract_crm

        manifest = extract_crm(zone, logical_date, endpoints.crm_url,
                               overlap_minutes=settings.crm_overlap_minutes, force=force,
                               progress=progress)
    elif source == "billing":
        from defection_warehouse.extract.billing import extract_billing

        manifest = extract_billing(zone, logical_date, endpoints.billing_url,
                                   endpoints.billing_api_key, force=force, progress=progress)
    elif source == "survey":
        from defection_warehouse.extract.survey import extract_survey

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
                       max_quarantine_share=settings.quarantine_max_share, progress=progress)
    result = loader.load(source, logical_date)
    return {"source": source, "batch_id": result.batch_id, "rows_in": result.rows_in,
            "rows_loaded": result.rows_loaded, "rows_quarantined": result.rows_quarantined,
            "seconds": round(result.seconds, 2)}


def raw_summary(warehouse_url: str, logical_date: date) -> list[tuple[str, int, int]]:
    """(table, rows in the date's batch, rows in total) for every raw table."""
    from psycopg import sql

    from defection_warehouse.contracts import ENTITIES
    from defection_warehouse.db import connect, qualified

    out = []
    with connect(warehouse_url) as conn:
        for e in ENTITIES:
            batch, total = conn.execute(
                sql.SQL("select count(*) filter (where _logical_date = %s), count(*) "
                        "from {}").format(qualified(e.raw_table)), (logical_date,)).fetchone()
            out.append((e.raw_table, batch, total))
    return out


def format_raw_summary(rows: list[tuple[str, int, int]], logical_date: date) -> str:
    width = max(len(t) for t, _, _ in rows)
    lines = [f"Raw layer after the {logical_date} batch:",
             f"  {'table':<{width}}  {'this batch':>10}  {'all batches':>11}"]
    lines += [f"  {t:<{width}}  {b:>10,}  {n:>11,}" for t, b, n in rows]
    return "\n".join(lines)
