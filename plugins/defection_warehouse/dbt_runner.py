"""Run dbt for the project's dbt_project/ against a warehouse URL.

The dbt profile reads its connection from DW_PG_* environment variables; this module sets
them from the warehouse URL, so callers only ever pass a URL (from an Airflow connection
or WAREHOUSE_URL) and no credentials are written to disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from urllib.parse import unquote, urlsplit

from defection_warehouse.config import PROJECT_ROOT

DBT_DIR = PROJECT_ROOT / "dbt_project"

# Nightly builds leave out dbt's unit tests: they check model logic on fixed inputs, not
# the night's data, so they run in CI (tests/test_quality_gate.py), as dbt recommends,
# instead of on every production build. They also leave target/manifest.json as the
# parse step wrote it (the same project, so the same manifest; dbt would write it twice
# more per build); run_dbt still writes target/run_results.json.
NIGHTLY_FLAGS = ("--exclude-resource-type", "unit_test", "--no-write-json")

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


def _keep_connections_open() -> None:
    """Let each dbt thread keep its PostgreSQL connection from node to node.

    dbt-postgres closes the connection after every node, so each of a build's ~250 nodes
    (most of them data tests) starts a new server process that warms its catalog caches
    again. This ends the node's transaction instead, which releases its locks, and keeps
    the session; dbt closes every connection when the invocation ends. It is the
    `reuse_connections` behaviour of dbt-snowflake (dbt-core PR #7587 proposed it for
    PostgreSQL). A connection found closed is released the usual way, so the next node
    opens a new one."""
    from dbt.adapters.postgres.connections import PostgresConnectionManager

    if getattr(PostgresConnectionManager, "_dw_keeps_connections", False):
        return
    close_after_node = PostgresConnectionManager.release

    def release(self: PostgresConnectionManager) -> None:
        conn = self.get_if_exists()
        if conn is None:
            return
        if conn.state != "open" or getattr(conn.handle, "closed", 1):
            close_after_node(self)
            return
        try:
            self.rollback_if_open()
            conn.handle.rollback()  # also a transaction psycopg2 began implicitly
        except Exception:
            self.clear_thread_connection()
            raise

    PostgresConnectionManager.release = release  # type: ignore[method-assign]
    PostgresConnectionManager._dw_keeps_connections = True  # type: ignore[attr-defined]


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

    from dbt.artifacts.schemas.run import RunExecutionResult
    from dbt.cli.main import dbtRunner

    cli = [*args, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    if vars_:
        cli += ["--vars", json.dumps(vars_)]
    env = profile_env(warehouse_url, schema)
    if as_of:
        env[AS_OF_ENV] = as_of.isoformat()
    _keep_connections_open()
    with _environ(env):
        result = dbtRunner().invoke(cli)
    if "--no-write-json" in args and isinstance(result.result, RunExecutionResult):
        result.result.write(str(DBT_DIR / "target" / "run_results.json"))
    if not result.success:
        failed = []
        for r in getattr(result.result, "results", None) or []:
            status = str(getattr(r, "status", ""))
            if status.lower() in ("error", "fail", "runtimeerror"):
                failed.append(f"{r.node.unique_id}: {status} {(r.message or '').strip()[:300]}")
        detail = "\n  ".join(failed) if failed else str(result.exception or "see dbt log")
        raise DbtError(f"dbt {' '.join(args)} failed:\n  {detail}")
    return result.result


def nightly_build(warehouse_url: str, *, select: Sequence[str] = (),
                  schema: str | None = None, as_of: date | None = None,
                  full_refresh: bool = False) -> object:
    """The nightly `dbt build` (NIGHTLY_FLAGS, plus `select`, e.g. --select arguments).

    Seeds whose files match what was last loaded into this warehouse are left out, with
    the data tests that read only them (see seed_state); --full-refresh loads them all.
    After a successful build the fingerprints of the seeds it loaded are kept."""
    from defection_warehouse.seed_state import record_loaded_seeds

    args = ["build", *nightly_selection(warehouse_url, select, full_refresh=full_refresh),
            *NIGHTLY_FLAGS]
    result = run_dbt(args, warehouse_url, schema=schema, as_of=as_of)
    record_loaded_seeds(warehouse_url, DBT_DIR, getattr(result, "results", None) or [])
    return result


def nightly_selection(warehouse_url: str, select: Sequence[str] = (), *,
                      full_refresh: bool = False) -> list[str]:
    """`select` plus the exclusion of the unchanged seeds and their own data tests."""
    from defection_warehouse.seed_state import unchanged_seed_nodes

    if full_refresh:
        return [*select, "--full-refresh"]
    unchanged = unchanged_seed_nodes(warehouse_url, DBT_DIR)
    if not unchanged:
        return list(select)
    # dbt's default (eager) indirect selection would also exclude every test that reads
    # an excluded seed, such as a mart's relationship to the cause taxonomy; cautious
    # excludes only the tests all of whose parents are excluded, and selects the same
    # nodes as eager when everything is selected
    mode = [] if "--indirect-selection" in select else ["--indirect-selection", "cautious"]
    return [*select, *mode, "--exclude", *unchanged]
