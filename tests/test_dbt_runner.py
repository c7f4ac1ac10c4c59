"""How run_dbt runs a nightly build: one PostgreSQL session per dbt thread for the whole
invocation (not one per node), the parse step's manifest left as it is, run_results.json
still written, as many threads as DW_DBT_THREADS or the cores, a parse state that the
DAG's Cosmos tasks can reuse, and column lookups that answer as information_schema."""

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


# Relations of every kind and column type the lookup distinguishes: lengths, precision
# and scale, arrays, a domain over an array, an enum (USER-DEFINED), a dropped column, a
# view, and a materialized view (which information_schema.columns leaves out).
CATALOG_FIXTURE = """
create schema catalog_check;
create type catalog_check.mood as enum ('ok', 'bad');
create domain catalog_check.codes as varchar(8)[];
create domain catalog_check.cents as numeric(12, 2);
create table catalog_check.everything (
    id bigint primary key, small smallint, name varchar(40), code char(3), body text,
    amount numeric(10, 2), ratio numeric, share double precision, at timestamptz,
    day date, flag boolean, tags text[], feeling catalog_check.mood,
    codes catalog_check.codes, price catalog_check.cents, gone int, bits bit varying(5),
    span interval, doc jsonb);
alter table catalog_check.everything drop column gone;
create view catalog_check.everything_view as select id, name, amount from catalog_check.everything;
create materialized view catalog_check.everything_mat as select id from catalog_check.everything;
"""

INFORMATION_SCHEMA = """
select table_schema::text, table_name::text, ordinal_position::int, column_name::text,
    data_type::text, character_maximum_length::int, numeric_precision::int,
    numeric_scale::int
from information_schema.columns
where table_schema not in ('pg_catalog', 'information_schema')
"""


def test_column_lookups_answer_as_information_schema(warehouse_url: str) -> None:
    run_dbt(["seed", "--quiet"], warehouse_url)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute(CATALOG_FIXTURE)
    result = run_dbt(["compile", "--quiet", "--inline",
                      "select table_schema, table_name, ordinal_position, column_name, "
                      "data_type, character_maximum_length, numeric_precision, numeric_scale "
                      "from ({{ catalog_columns_query() }}) as catalog "
                      "where table_schema not in ('pg_catalog', 'information_schema')"],
                     warehouse_url)
    catalog_sql = result.results[0].node.compiled_code
    with psycopg.connect(warehouse_url) as conn:
        catalog = set(conn.execute(catalog_sql).fetchall())
        expected = set(conn.execute(INFORMATION_SCHEMA).fetchall())
    assert catalog == expected
    kinds = {row[4] for row in expected if row[0] == "catalog_check"}
    assert {"ARRAY", "USER-DEFINED", "character varying", "numeric"} <= kinds
    assert not any(row[1] == "everything_mat" for row in expected)
    # the seeds are in both, and dbt reads a seed's columns through the project's macro
    assert sum(1 for row in catalog if row[0] == "seeds") > 20
    shown = run_dbt(["compile", "--quiet", "--inline",
                     "{% set columns = adapter.get_columns_in_relation(ref('plan_catalog')) %}"
                     "select '{{ columns | map(attribute='name') | join(',') }}' as names"],
                    warehouse_url)
    with psycopg.connect(warehouse_url) as conn:
        names = conn.execute(shown.results[0].node.compiled_code).fetchone()[0]
        in_order = conn.execute(
            "select string_agg(column_name, ',' order by ordinal_position) "
            "from information_schema.columns "
            "where table_schema = 'seeds' and table_name = 'plan_catalog'").fetchone()[0]
    assert names == in_order
