"""How run_dbt runs a nightly build: one PostgreSQL session per dbt thread for the whole
invocation (not one per node), the parse step's manifest left as it is, run_results.json
still written, as many threads as DW_DBT_THREADS or the cores, and a parse state that the
DAG's Cosmos tasks can reuse."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg
import pytest

from defection_warehouse.config import Settings
from defection_warehouse.db import with_database
from defection_warehouse.dbt_runner import (
    DBT_DIR,
    NIGHTLY_FLAGS,
    PROFILE_NAME,
    TARGET_NAME,
    profile_env,
    run_dbt,
)

THREADS = 2


def _sessions(admin_url: str, database: str) -> int:
    """Sessions ever opened to `database`, read from another database so that reading
    does not count. Backends report their session at exit, so wait until it settles."""
    last = -1
    for _ in range(20):
        with psycopg.connect(admin_url) as conn:
            conn.execute("select pg_stat_clear_snapshot()")
            now = conn.execute("select sessions from pg_stat_database where datname = %s",
                               (database,)).fetchone()[0]
        if now == last:
            return now
        last = now
        time.sleep(0.5)
    return last


def test_a_build_keeps_one_session_per_thread(warehouse_url: str) -> None:
    admin = with_database(warehouse_url, "postgres")
    database = urlsplit(warehouse_url).path.lstrip("/")
    manifest = DBT_DIR / "target" / "manifest.json"
    manifest_written = manifest.stat().st_mtime_ns
    before = _sessions(admin, database)
    started = datetime.now(UTC).replace(tzinfo=None).isoformat()

    # the seeds and their data tests: twenty-odd nodes, no raw tables needed
    result = run_dbt(["build", "--quiet", "--select", "resource_type:seed",
                      "--indirect-selection", "cautious", "--threads", str(THREADS),
                      *NIGHTLY_FLAGS], warehouse_url)

    nodes = len(result.results)
    opened = _sessions(admin, database) - before
    assert nodes >= 20
    # one per thread, and one for dbt's own queries before the nodes start
    assert 1 <= opened <= THREADS + 1, f"{opened} sessions for {nodes} nodes"
    assert manifest.stat().st_mtime_ns == manifest_written
    run_results = json.loads((DBT_DIR / "target" / "run_results.json").read_text())
    assert run_results["metadata"]["generated_at"] >= started
    assert len(run_results["results"]) == nodes
    assert {r["status"] for r in run_results["results"]} == {"success", "pass"}


def test_threads_follow_dw_dbt_threads_else_the_cores(monkeypatch) -> None:
    monkeypatch.delenv("DW_DBT_THREADS", raising=False)
    assert Settings.from_env().dbt_threads == (os.cpu_count() or 4)
    assert profile_env("postgresql://u@h/db")["DW_DBT_THREADS"] == str(os.cpu_count() or 4)
    monkeypatch.setenv("DW_DBT_THREADS", "3")
    assert profile_env("postgresql://u@h/db")["DW_DBT_THREADS"] == "3"
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("DW_DBT_THREADS", bad)
        with pytest.raises(ValueError, match="DW_DBT_THREADS"):
            Settings.from_env()


def _parse_events(*extra: str) -> list[str]:
    """Names of the events of a `dbt parse` invoked the way the DAG's Cosmos tasks invoke
    dbt: profile and target named on the command line."""
    from dbt.cli.main import dbtRunner

    events: list[str] = []
    dbtRunner(callbacks=[lambda event: events.append(event.info.name)]).invoke([
        "parse", "--quiet", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
        "--profile", PROFILE_NAME, "--target", TARGET_NAME, *extra])
    return events


def test_cosmos_tasks_reuse_the_parse_state_of_run_dbt(monkeypatch) -> None:
    run_dbt(["parse", "--quiet"], "postgresql://localhost/unused")
    # the connection variables run_dbt sets, so that the profile renders the same
    for name, value in profile_env("postgresql://localhost/unused").items():
        monkeypatch.setenv(name, value)
    try:
        assert "UnableToPartialParse" not in _parse_events()
        # the check can fail: other --vars than run_dbt's do reject the saved state
        assert "UnableToPartialParse" in _parse_events("--vars", '{"parse_check": 1}')
    finally:
        run_dbt(["parse", "--quiet"], "postgresql://localhost/unused")
