"""How run_dbt runs dbt: as many threads as DW_DBT_THREADS or the cores, and a parse state
that the DAG's Cosmos tasks can reuse."""

from __future__ import annotations

import os

import pytest

from defection_warehouse.config import Settings
from defection_warehouse.transform.dbt_runner import (
    DBT_DIR,
    PROFILE_NAME,
    TARGET_NAME,
    profile_env,
    run_dbt,
)


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


def _audit_load(conn, source: str, day: str, *, replaced: int = 0) -> None:
    conn.execute(
        "insert into raw_meta.load_audit values (gen_random_uuid(), %s, %s, 'e', %s, 'f', "
        "1, 1, 0, %s, 'p', now(), now(), 0, 'loaded', null, clock_timestamp())",
        (f"{source}-{day}", source, day, replaced))


def test_the_dags_plan_and_record_apply_the_full_refresh_rule(warehouse_url: str) -> None:
    """dbt_plan and dbt_record (the DAG) and nightly_build share these two steps; the plan
    crosses an XCom between them, so it must survive plain JSON."""
    import json

    import psycopg

    from defection_warehouse.load.raw_loader import META_DDL
    from defection_warehouse.transform.dbt_builds import BuildPlan
    from defection_warehouse.transform.dbt_runner import plan_nightly_build, record_nightly_build

    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create schema raw_meta")
        conn.execute(META_DDL)
        _audit_load(conn, "billing", "2026-05-01")
    first = plan_nightly_build(warehouse_url)
    assert first.full_refresh and "no earlier nightly build" in first.reason
    carried = BuildPlan.from_dict(json.loads(json.dumps(first.as_dict())))
    assert carried == first
    record_nightly_build(warehouse_url, carried, as_of=None)

    second = plan_nightly_build(warehouse_url)
    assert (second.full_refresh, second.reason) == (False, None)
    assert second.loaded_through == first.loaded_through
    assert plan_nightly_build(warehouse_url, full_refresh=True).reason == "asked for"

    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        _audit_load(conn, "billing", "2026-04-30")  # a late day
    late = plan_nightly_build(warehouse_url)
    assert late.full_refresh and "older than a day loaded before it" in late.reason
    assert late.loaded_through > first.loaded_through
