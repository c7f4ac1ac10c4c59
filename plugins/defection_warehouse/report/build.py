"""Build the leadership report and the owner digests of the published night."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from defection_warehouse.report.data import load_report_data
from defection_warehouse.report.digests import build_digests, write_digests
from defection_warehouse.report.html import write_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltReport:
    as_of_date: date
    report: Path  # <data_dir>/reports/<as_of_date>/report.html
    digests: Path  # <data_dir>/reports/<as_of_date>/digests/
    owners: tuple[str, ...]


def build(warehouse_url: str, data_dir: Path, schema: str = "analytics",
          as_of: date | None = None) -> BuiltReport:
    """Read the published schema `schema` and write the report and the digests under
    `data_dir`/reports/<as_of_date>/ (a rebuild of the same date replaces them)."""
    data = load_report_data(warehouse_url, schema, as_of)
    currency = os.environ.get("DW_REPORTING_CURRENCY") or "usd"
    report = write_report(data, data_dir, currency)
    digests = build_digests(warehouse_url, data)
    folder = write_digests(digests, report.parent)
    log.info("leadership report as of %s: %s (%d digests)", data.as_of_date, report,
             len(digests))
    return BuiltReport(data.as_of_date, report, folder, tuple(d.owner for d in digests))
