"""Settings from environment variables (documented in README.md and .env.example)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from defection_warehouse.contracts import BILLING_API_VERSION

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Warehouse schemas. Raw and meta schemas belong to the loader; dbt writes staging views,
# intermediate tables and seeds to schemas of their own (they keep incremental state from
# night to night) and the marts to the build schema, also kept; publish swaps a validated
# build schema with the published schema, the only one BI tools read.
RAW_SCHEMAS = ("raw_crm", "raw_billing", "raw_survey")
RAW_META_SCHEMA = "raw_meta"
STAGING_SCHEMA = "staging"
INTERMEDIATE_SCHEMA = "intermediate"
SEEDS_SCHEMA = "seeds"
META_SCHEMA = "dw_meta"  # publish log and quality-gate results


# The sources a business may connect. Billing is the revenue record every mart starts
# from; the CRM and the survey tool are optional (many businesses start with billing).
ALL_SOURCES = ("crm", "billing", "survey")
REQUIRED_SOURCES = ("billing",)


def parse_sources(raw: str | None, *, origin: str = "DW_SOURCES") -> tuple[str, ...]:
    """The connected sources from a comma list such as "billing,crm" (empty or None: all
    of them), in the pipeline's order. Unknown names and a list without billing are
    refused, naming where the list came from."""
    if raw is None or not raw.strip():
        return ALL_SOURCES
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ALL_SOURCES))
    if unknown:
        raise ValueError(f"{origin}={raw!r} names unknown source(s) {', '.join(unknown)}; "
                         f"the sources are {', '.join(ALL_SOURCES)}")
    missing = [n for n in REQUIRED_SOURCES if n not in names]
    if missing:
        raise ValueError(f"{origin}={raw!r} leaves out {', '.join(missing)}, which every "
                         "warehouse needs (its revenue record); crm and survey are optional")
    return tuple(n for n in ALL_SOURCES if n in names)


def _api_version(raw: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?", raw):
        raise ValueError(f"BILLING_API_VERSION={raw!r} is not a Stripe API version such as "
                         f"{BILLING_API_VERSION} or 2025-09-30.clover")
    return raw


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _float(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from exc


def _int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} is not a whole number") from exc


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    warehouse_url: str | None
    crm_url: str | None
    landing_url: str
    survey_inbox: str
    billing_api_url: str | None
    billing_api_key: str | None
    quarantine_max_share: float
    # a file fails only past both the share and this many malformed rows (or when all of
    # its rows are malformed), so one bad row cannot fail a small file
    quarantine_min_rows: int
    crm_overlap_minutes: int
    sample_customers: int
    sample_months: int
    sample_seed: int
    sample_end_date: date
    embedded_pg_port: int
    build_schema: str
    publish_schema: str
    # the connected sources (DW_SOURCES); the others are neither extracted, loaded nor
    # gated, and their raw tables stay empty
    sources: tuple[str, ...]
    # dbt threads: one per core by default. On two cores, four threads made a night's
    # build 15-20% slower than two (queries and dbt's own Python work compete for the
    # cores), and the full build no faster.
    dbt_threads: int
    # Stripe-Version the billing extractor sends (BILLING_API_VERSION); the default is
    # the version the extractor is written for, and it reads the basil+ shape as well
    billing_api_version: str = BILLING_API_VERSION

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(_env("DW_DATA_DIR", str(PROJECT_ROOT / ".data"))).resolve()
        end = _env("SAMPLE_END_DATE", "2026-10-31")
        try:
            end_date = date.fromisoformat(end)
        except ValueError as exc:
            raise ValueError(f"SAMPLE_END_DATE={end!r} is not a YYYY-MM-DD date") from exc
        threads = _int("DW_DBT_THREADS", os.cpu_count() or 4)
        if threads < 1:
            raise ValueError(f"DW_DBT_THREADS={threads} must be at least 1")
        share = _float("QUARANTINE_MAX_SHARE", 0.01)
        if not 0 <= share <= 1:
            raise ValueError(f"QUARANTINE_MAX_SHARE={share} must be between 0 and 1")
        min_rows = _int("QUARANTINE_MIN_ROWS", 5)
        if min_rows < 0:
            raise ValueError(f"QUARANTINE_MIN_ROWS={min_rows} must not be negative")
        return cls(
            data_dir=data_dir,
            warehouse_url=_env("WAREHOUSE_URL"),
            crm_url=_env("CRM_URL"),
            landing_url=_env("LANDING_URL", str(data_dir / "landing")),
            survey_inbox=_env("SURVEY_INBOX", str(data_dir / "sample" / "survey_inbox")),
            billing_api_url=_env("BILLING_API_URL"),
            billing_api_key=_env("BILLING_API_KEY"),
            quarantine_max_share=share,
            quarantine_min_rows=min_rows,
            crm_overlap_minutes=_int("CRM_OVERLAP_MINUTES", 120),
            sample_customers=_int("SAMPLE_CUSTOMERS", 2000),
            sample_months=_int("SAMPLE_MONTHS", 24),
            sample_seed=_int("SAMPLE_SEED", 42),
            sample_end_date=end_date,
            embedded_pg_port=_int("EMBEDDED_PG_PORT", 54329),
            build_schema=_env("DW_BUILD_SCHEMA", "analytics_build"),
            publish_schema=_env("DW_PUBLISH_SCHEMA", "analytics"),
            dbt_threads=threads,
            billing_api_version=_api_version(_env("BILLING_API_VERSION", BILLING_API_VERSION)),
            sources=parse_sources(_env("DW_SOURCES")),
        )

    @property
    def sample_dir(self) -> Path:
        return self.data_dir / "sample"

    @property
    def absent_sources(self) -> tuple[str, ...]:
        return tuple(s for s in ALL_SOURCES if s not in self.sources)
