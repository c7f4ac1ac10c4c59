"""Settings from environment variables (documented in README.md and .env.example)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from defection_warehouse.sources.contracts import BILLING_API_VERSION

# The project's folder: dags/, dbt_project/ (and its target/manifest.json), expectations/.
# The source checkout this package lives in, or DW_PROJECT_DIR when the package is installed
# elsewhere (site-packages in the Docker image, which sets DW_PROJECT_DIR=/opt/project). Read
# once, when the package is imported: set it in the environment, not in .env.
PROJECT_DIR_ENV = "DW_PROJECT_DIR"
_SOURCE_CHECKOUT = Path(__file__).resolve().parents[2]


def project_root(environ: Mapping[str, str] = os.environ) -> Path:
    """DW_PROJECT_DIR (empty: unset), else the source checkout. A DW_PROJECT_DIR without a
    dbt_project/ folder is refused, naming the variable."""
    configured = environ.get(PROJECT_DIR_ENV, "").strip()
    if not configured:
        return _SOURCE_CHECKOUT
    root = Path(configured).expanduser().resolve()
    if not (root / "dbt_project" / "dbt_project.yml").is_file():
        raise ValueError(f"{PROJECT_DIR_ENV}={configured!r} is not the project folder: "
                         f"{root / 'dbt_project' / 'dbt_project.yml'} does not exist")
    return root


PROJECT_ROOT: Path = project_root()
# The Great Expectations project; its Data Docs site goes to DW_GX_DATA_DOCS_DIR when set.
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
DATA_DOCS_ENV = "DW_GX_DATA_DOCS_DIR"

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


_PARSE_ERRORS = {
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "int_type": "is not a whole number",
    "float_parsing": "is not a number",
    "float_type": "is not a number",
    "date_parsing": "is not a YYYY-MM-DD date",
    "date_from_datetime_parsing": "is not a YYYY-MM-DD date",
    "date_from_datetime_inexact": "is not a YYYY-MM-DD date",
    "date_type": "is not a YYYY-MM-DD date",
}


def _describe(exc: ValidationError) -> str:
    """One line per invalid variable: the variable, its value and what is wrong with it."""
    lines = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"])
        if error["type"] == "value_error":  # our validators' messages name the variable
            lines.append(str(error["ctx"]["error"]))
        elif error["type"] in _PARSE_ERRORS:
            lines.append(f"environment variable {name}={error['input']!r} "
                         f"{_PARSE_ERRORS[error['type']]}")
        else:
            lines.append(f"environment variable {name}={error['input']!r}: {error['msg']}")
    return "\n".join(lines)


def _var(name: str, default: Any = PydanticUndefined, **kwargs: Any) -> Any:
    """A setting read from the environment variable `name` (empty means unset)."""
    return Field(default, validation_alias=name, **kwargs)


class Settings(BaseSettings):
    """The warehouse's settings, read from environment variables by `from_env()`.

    Each field names its variable (`validation_alias`); names are case-sensitive and an
    empty value counts as unset. Immutable: derive a variant with
    `settings.model_copy(update={...})`.
    """

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, env_ignore_empty=True)

    data_dir: Path = _var("DW_DATA_DIR", default_factory=lambda: PROJECT_ROOT / ".data",
                          validate_default=True)
    warehouse_url: str | None = _var("WAREHOUSE_URL", None)
    crm_url: str | None = _var("CRM_URL", None)
    # default: folders under data_dir (validated first, so the factories see it resolved)
    landing_url: str = _var("LANDING_URL",
                            default_factory=lambda data: str(data["data_dir"] / "landing"))
    survey_inbox: str = _var("SURVEY_INBOX", default_factory=lambda data: str(
        data["data_dir"] / "sample" / "survey_inbox"))
    billing_api_url: str | None = _var("BILLING_API_URL", None)
    billing_api_key: str | None = _var("BILLING_API_KEY", None)
    quarantine_max_share: float = _var("QUARANTINE_MAX_SHARE", 0.01)
    # a file fails only past both the share and this many malformed rows (or when all of
    # its rows are malformed), so one bad row cannot fail a small file
    quarantine_min_rows: int = _var("QUARANTINE_MIN_ROWS", 5)
    crm_overlap_minutes: int = _var("CRM_OVERLAP_MINUTES", 120)
    sample_customers: int = _var("SAMPLE_CUSTOMERS", 2000)
    sample_months: int = _var("SAMPLE_MONTHS", 24)
    sample_seed: int = _var("SAMPLE_SEED", 42)
    sample_end_date: date = _var("SAMPLE_END_DATE", date(2026, 10, 31))
    # standard, or hard: the sample with the noise of a real business (see sample/simulate.py)
    sample_difficulty: str = _var("SAMPLE_DIFFICULTY", "standard")
    embedded_pg_port: int = _var("EMBEDDED_PG_PORT", 54329)
    build_schema: str = _var("DW_BUILD_SCHEMA", "analytics_build")
    publish_schema: str = _var("DW_PUBLISH_SCHEMA", "analytics")
    # the connected sources (DW_SOURCES, a comma list; NoDecode: not JSON); the others are
    # neither extracted, loaded nor gated, and their raw tables stay empty
    sources: Annotated[tuple[str, ...], NoDecode] = _var("DW_SOURCES", ALL_SOURCES)
    # dbt threads: one per core by default. On two cores, four threads made a night's
    # build 15-20% slower than two (queries and dbt's own Python work compete for the
    # cores), and the full build no faster.
    dbt_threads: int = _var("DW_DBT_THREADS", default_factory=lambda: os.cpu_count() or 4)
    # Stripe-Version the billing extractor sends (BILLING_API_VERSION); the default is
    # the version the extractor is written for, and it reads the basil+ shape as well
    billing_api_version: str = _var("BILLING_API_VERSION", BILLING_API_VERSION)

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from the environment; a ValueError names every invalid variable."""
        try:
            return cls()
        except ValidationError as exc:
            raise ValueError(_describe(exc)) from None

    @field_validator("data_dir")
    @classmethod
    def _resolve(cls, value: Path) -> Path:
        return value.resolve()

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        return parse_sources(value) if isinstance(value, str) else value

    @field_validator("billing_api_version")
    @classmethod
    def _billing_api_version(cls, value: str) -> str:
        return _api_version(value)

    @field_validator("dbt_threads")
    @classmethod
    def _threads(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"DW_DBT_THREADS={value} must be at least 1")
        return value

    @field_validator("quarantine_max_share")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"QUARANTINE_MAX_SHARE={value} must be between 0 and 1")
        return value

    @field_validator("quarantine_min_rows")
    @classmethod
    def _min_rows(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"QUARANTINE_MIN_ROWS={value} must not be negative")
        return value

    @property
    def sample_dir(self) -> Path:
        return self.data_dir / "sample"

    @property
    def absent_sources(self) -> tuple[str, ...]:
        return tuple(s for s in ALL_SOURCES if s not in self.sources)
