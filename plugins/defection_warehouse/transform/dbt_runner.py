"""Run dbt for the project's dbt_project/ against a warehouse URL.

The dbt profile reads its connection from DW_PG_* environment variables; this module sets
them from the warehouse URL, so callers only ever pass a URL (from an Airflow connection
or WAREHOUSE_URL) and no credentials are written to disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from defection_warehouse.config import PROJECT_ROOT

if TYPE_CHECKING:
    from defection_warehouse.transform.dbt_builds import BuildPlan

DBT_DIR = PROJECT_ROOT / "dbt_project"

log = logging.getLogger(__name__)

# Nightly builds leave out dbt's unit tests: they check model logic on fixed inputs, not
# the night's data, so they run in CI (tests/test_quality_gate.py), as dbt recommends,
# instead of on every production build.
NIGHTLY_FLAGS = ("--exclude-resource-type", "unit_test")

# Read by the as_of_date() macro when a model runs.
AS_OF_ENV = "DW_AS_OF_DATE"

# The profile and target of profiles.yml, named on every invocation as the DAG's Cosmos
# tasks name them: dbt's partial-parse state hashes both names, so without them the first
# mart task of a night would parse the whole project again (about 3 s).
PROFILE_NAME = "defection_warehouse"
TARGET_NAME = "warehouse"


class DbtError(RuntimeError):
    """dbt reported errors or failing tests; the message lists the failing nodes."""


def profile_env(warehouse_url: str, schema: str | None = None) -> dict[str, str]:
    """dbt profile variables for `warehouse_url`; the marts go to `schema` (default: the
    configured build schema)."""
    from defection_warehouse.config import Settings

    settings = Settings.from_env()
    parts = urlsplit(warehouse_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"warehouse URL must be postgresql://..., got scheme {parts.scheme!r}")
    return {
        "DW_PG_HOST": parts.hostname or "127.0.0.1",
        "DW_PG_PORT": str(parts.port or 5432),
        "DW_PG_USER": unquote(parts.username or "postgres"),
        "DW_PG_PASSWORD": unquote(parts.password or ""),
        "DW_PG_DATABASE": parts.path.lstrip("/") or "postgres",
        "DW_BUILD_SCHEMA": schema or settings.build_schema,
        "DW_DBT_THREADS": str(settings.dbt_threads),
        "DBT_PROFILE": PROFILE_NAME,
        "DBT_TARGET": TARGET_NAME,
        "DBT_PROFILES_DIR": str(DBT_DIR),
        "DBT_PROJECT_DIR": str(DBT_DIR),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_dbt(args: Sequence[str], warehouse_url: str, *, schema: str | None = None,
            as_of: date | None = None, vars_: dict[str, object] | None = None) -> object:
    """Invoke dbt in-process; raise DbtError naming every failed node.

    `as_of` is the date the marts describe (default: DW_AS_OF_DATE if set, else the
    newest day loaded). It reaches dbt as DW_AS_OF_DATE, not as a --vars value: dbt
    parses the whole project again whenever --vars change, which a new date every night
    would otherwise cost."""
    import json

    from dbt.cli.main import dbtRunner

    cli = [*args, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    if vars_:
        cli += ["--vars", json.dumps(vars_)]
    env = profile_env(warehouse_url, schema)
    if as_of:
        env[AS_OF_ENV] = as_of.isoformat()
    with _environ(env):
        result = dbtRunner().invoke(cli)
    if not result.success:
        failed = []
        for r in getattr(result.result, "results", None) or []:
            status = str(getattr(r, "status", ""))
            if status.lower() in ("error", "fail", "runtimeerror"):
                failed.append(f"{r.node.unique_id}: {status} {(r.message or '').strip()[:300]}")
        detail = "\n  ".join(failed) if failed else str(result.exception or "see dbt log")
        raise DbtError(f"dbt {' '.join(args)} failed:\n  {detail}")
    return result.result


def plan_nightly_build(warehouse_url: str, *, full_refresh: bool = False) -> BuildPlan:
    """Decide tonight's build before it starts: a full refresh when asked for, or when the
    loads since the previous nightly build require one (dbt_builds.full_refresh_reason: a
    rerun, backfill or late day). Creates dw_meta.dbt_builds on a new warehouse."""
    import psycopg

    from defection_warehouse.transform.dbt_builds import ensure_table, plan_build

    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        ensure_table(conn)
        plan = plan_build(conn, full_refresh=full_refresh)
    if plan.full_refresh:
        log.info("dbt build with --full-refresh: %s", plan.reason)
    else:
        log.info("incremental dbt build: no load since the last build replaced a batch or "
                 "brought an older day")
    return plan


def record_nightly_build(warehouse_url: str, plan: BuildPlan, *, as_of: date | None) -> None:
    """Record a nightly build that succeeded in dw_meta.dbt_builds."""
    import psycopg

    from defection_warehouse.transform.dbt_builds import record_build

    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        record_build(conn, plan, as_of=as_of)


def nightly_build(warehouse_url: str, *, select: Sequence[str] = (),
                  schema: str | None = None, as_of: date | None = None,
                  full_refresh: bool = False) -> object:
    """The nightly `dbt build` (NIGHTLY_FLAGS, plus `select`, e.g. --select arguments), as
    the DAG's dbt stage runs it: planned (plan_nightly_build), run, and recorded in
    dw_meta.dbt_builds when it succeeds."""
    plan = plan_nightly_build(warehouse_url, full_refresh=full_refresh)
    args = ["build", *select, *(["--full-refresh"] if plan.full_refresh else []),
            *NIGHTLY_FLAGS]
    result = run_dbt(args, warehouse_url, schema=schema, as_of=as_of)
    record_nightly_build(warehouse_url, plan, as_of=as_of)
    return result
