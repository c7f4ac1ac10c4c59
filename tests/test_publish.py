"""Write-audit-publish: the blue/green swap of the build and the published schema, its log
and KPI history, leftovers in the build schema, and what readers and the published schema
see when a publish fails or runs concurrently."""

from __future__ import annotations

import threading
import time
from datetime import date

import psycopg
import pytest

from defection_warehouse import cli
from defection_warehouse.publish import roles
from defection_warehouse.publish.swap import (
    PublishError,
    PublishResult,
    dbt_marts,
    ensure_build_schema,
    publish,
    published_checksums,
    restore_previous,
)

BUILD, PUB = "analytics_build", "analytics"
D1, D2 = date(2026, 9, 30), date(2026, 10, 31)
MARTS = ("dim_customers", "kpi_retention_monthly")  # of the synthetic builds


def build(url: str, version: int, *, months: int = 3, customers: int = 5) -> None:
    """A synthetic nightly build: every row of a generation carries its version. Like the
    nightly dbt build it starts with ensure_build_schema and replaces the marts in place."""
    ensure_build_schema(url, BUILD)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"drop table if exists {BUILD}.kpi_retention_monthly, {BUILD}.dim_customers")
        conn.execute(f"create table {BUILD}.kpi_retention_monthly (month date primary key, "
                     "version int not null, logo_churn_rate numeric not null)")
        conn.execute(
            f"insert into {BUILD}.kpi_retention_monthly select "
            "(date '2026-01-01' + make_interval(months => g))::date, %s, g / 100.0 "
            "from generate_series(0, %s - 1) g", (version, months))
        conn.execute(f"create table {BUILD}.dim_customers (customer_id text primary key, "
                     "version int not null)")
        conn.execute(f"insert into {BUILD}.dim_customers select 'cus_' || g, %s "
                     "from generate_series(1, %s) g", (version, customers))


def rows(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def run(url: str, run_id: str, as_of: date, **kwargs) -> PublishResult:
    kwargs.setdefault("tables", MARTS)
    return publish(url, build_schema=BUILD, publish_schema=PUB, run_id=run_id,
                   as_of_date=as_of, **kwargs)


def schema_oid(url: str, schema: str) -> int | None:
    found = rows(url, "select oid from pg_namespace where nspname = %s", (schema,))
    return found[0][0] if found else None


def relations(url: str, schema: str) -> list[str]:
    return [r[0] for r in rows(url, "select c.relname from pg_class c join pg_namespace n "
                                    "on n.oid = c.relnamespace where n.nspname = %s "
                                    "and c.relkind in ('r', 'v', 'm', 'S') order by 1",
                               (schema,))]


def test_first_and_second_publish(warehouse_url: str) -> None:
    build(warehouse_url, 1)
    first = run(warehouse_url, "run_1", D1)
    assert first.tables == ("dim_customers", "kpi_retention_monthly")
    assert first.row_counts == {"dim_customers": 5, "kpi_retention_monthly": 3}
    assert first.history_rows == 3
    assert "published 2 tables (8 rows)" in first.summary()
    assert rows(warehouse_url, f"select distinct version from {PUB}.kpi_retention_monthly") \
        == [(1,)]
    # The first publish renamed the build schema and made a new, empty one.
    assert rows(warehouse_url, "select count(*) from pg_tables where schemaname = %s",
                (BUILD,)) == [(0,)]

    build(warehouse_url, 2, months=4, customers=7)
    oids = {s: schema_oid(warehouse_url, s) for s in (BUILD, PUB)}
    with psycopg.connect(warehouse_url, autocommit=True) as conn:  # the swap's first choice
        conn.execute(f"create schema {PUB}__swap")                 # of a temporary name
        conn.execute(f"create table {PUB}__swap.mine as select 1 as id")
    second = run(warehouse_url, "run_2", D2)
    assert second.row_counts == {"dim_customers": 7, "kpi_retention_monthly": 4}
    assert rows(warehouse_url, f"select count(*), min(version), max(version) "
                               f"from {PUB}.dim_customers") == [(7, 2, 2)]
    # The schemas were swapped (no copy): the build schema now holds the previous
    # generation, which the next build replaces; kpi_history stayed published.
    assert schema_oid(warehouse_url, PUB) == oids[BUILD]
    assert schema_oid(warehouse_url, BUILD) == oids[PUB]
    assert rows(warehouse_url, f"select count(*), min(version), max(version) "
                               f"from {BUILD}.dim_customers") == [(5, 1, 1)]
    assert relations(warehouse_url, BUILD) == list(MARTS)
    assert relations(warehouse_url, PUB) == ["dim_customers", "kpi_history",
                                             "kpi_retention_monthly"]
    assert {r[0] for r in rows(warehouse_url, "select nspname from pg_namespace "
                                              "where nspname like %s", (f"{PUB}%",))} \
        == {PUB, f"{PUB}__swap", BUILD}  # no temporary schema left behind
    assert relations(warehouse_url, f"{PUB}__swap") == ["mine"]
    log = rows(warehouse_url, "select run_id, as_of_date, tables, row_counts "
                              "from dw_meta.publish_log order by id")
    assert log == [
        ("run_1", D1, ["dim_customers", "kpi_retention_monthly"],
         {"dim_customers": 5, "kpi_retention_monthly": 3}),
        ("run_2", D2, ["dim_customers", "kpi_retention_monthly"],
         {"dim_customers": 7, "kpi_retention_monthly": 4}),
    ]
    history = rows(warehouse_url, f"select as_of_date, run_id, count(*), min(version), "
                                  f"max(version) from {PUB}.kpi_history group by 1, 2 order by 1")
    assert history == [(D1, "run_1", 3, 1, 1), (D2, "run_2", 4, 2, 2)]
    published_at = rows(warehouse_url, f"select distinct published_at from {PUB}.kpi_history "
                                       "where as_of_date = %s", (D2,))
    assert published_at == [(second.published_at,)]


def test_rerun_of_the_same_as_of_date_is_identical(warehouse_url: str) -> None:
    build(warehouse_url, 1)
    run(warehouse_url, "run_0", D1)
    build(warehouse_url, 2)
    run(warehouse_url, "run_a", D2)
    before = published_checksums(warehouse_url, PUB)
    assert set(before) == {"dim_customers", "kpi_history", "kpi_retention_monthly"}

    build(warehouse_url, 2)  # the same build again, e.g. a cleared and rerun DAG run
    run(warehouse_url, "run_b", D2)
    assert published_checksums(warehouse_url, PUB) == before
    history = rows(warehouse_url, f"select as_of_date, run_id, count(*) from {PUB}.kpi_history "
                                  "group by 1, 2 order by 1")
    assert history == [(D1, "run_0", 3), (D2, "run_b", 3)]  # replaced, older as-of kept


def test_empty_or_missing_build_schema_fails_and_changes_nothing(warehouse_url: str) -> None:
    with pytest.raises(PublishError, match="has no tables"):
        run(warehouse_url, "run_0", D1)  # the build schema does not even exist
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    before = published_checksums(warehouse_url, PUB)
    with pytest.raises(PublishError, match=f"build schema '{BUILD}' has no tables"):
        run(warehouse_url, "run_2", D2)  # the first publish left a new, empty one
    assert published_checksums(warehouse_url, PUB) == before
    assert rows(warehouse_url, "select count(*) from dw_meta.publish_log") == [(1,)]


def test_missing_table_fails_and_changes_nothing(warehouse_url: str) -> None:
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    before = published_checksums(warehouse_url, PUB)
    build(warehouse_url, 2)
    with pytest.raises(PublishError, match="fct_defections not found"):
        run(warehouse_url, "run_2", D2, tables=["kpi_retention_monthly", "fct_defections"])
    assert published_checksums(warehouse_url, PUB) == before
    assert rows(warehouse_url, "select count(*) from pg_tables where schemaname = %s",
                (BUILD,)) == [(2,)]
    # `tables` is the whole set of marts: any other table of the build is a leftover,
    # dropped instead of published, and a published mart not in the set is unpublished.
    result = run(warehouse_url, "run_2", D2, tables=["dim_customers"])
    assert result.tables == ("dim_customers",) and result.history_rows is None
    assert result.dropped == ("kpi_retention_monthly",)
    assert relations(warehouse_url, PUB) == ["dim_customers", "kpi_history"]
    assert rows(warehouse_url, f"select max(version) from {PUB}.dim_customers") == [(2,)]
    assert rows(warehouse_url, f"select max(version) from {BUILD}.kpi_retention_monthly") \
        == [(1,)]


def test_lock_held_by_a_reader_times_out_and_changes_nothing(warehouse_url: str) -> None:
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    before = published_checksums(warehouse_url, PUB)
    build(warehouse_url, 2)
    with psycopg.connect(warehouse_url) as reader:  # an open transaction holding the lock
        reader.execute(f"lock table {PUB}.kpi_retention_monthly in access share mode")
        started = time.monotonic()
        with pytest.raises(PublishError) as failure:
            run(warehouse_url, "run_2", D2, lock_timeout="500ms")
        waited = time.monotonic() - started
        reader.rollback()
    assert 0.4 < waited < 5, waited
    message = str(failure.value)
    assert f"lock {PUB}.kpi_retention_monthly" in message and "500ms" in message
    assert published_checksums(warehouse_url, PUB) == before
    assert rows(warehouse_url, "select count(*) from dw_meta.publish_log") == [(1,)]
    # The build is intact, so the retry succeeds once the reader is gone.
    assert run(warehouse_url, "run_2b", D2).row_counts["kpi_retention_monthly"] == 3


def state(url: str) -> dict[str, object]:
    """Everything a failed publish must leave as it was."""
    return {"published": published_checksums(url, PUB), "build": published_checksums(url, BUILD),
            "oids": (schema_oid(url, PUB), schema_oid(url, BUILD)),
            "relations": (relations(url, PUB), relations(url, BUILD)),
            "log": rows(url, "select count(*) from dw_meta.publish_log"),
            "acl": rows(url, "select nspname, nspacl::text, obj_description(oid, "
                             "'pg_namespace') from pg_namespace where nspname in (%s, %s) "
                             "order by 1", (PUB, BUILD))}


@pytest.mark.parametrize("statement", ["alter schema", "alter table", "comment"])
def test_failure_mid_swap_rolls_everything_back(warehouse_url: str, statement: str) -> None:
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    build(warehouse_url, 2)
    run(warehouse_url, "run_2", D2)
    build(warehouse_url, 3)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:  # a leftover to drop
        conn.execute(f"create table {BUILD}.fct_removed_model as select 1 as id")
    before = state(warehouse_url)
    # Fail the publish at the first statement of the given kind: the first rename of the
    # swap, the move of kpi_history after all three renames, or the mark after the move.
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create function fail_publish() returns event_trigger language plpgsql "
                     "as $$ begin raise exception 'injected failure'; end $$")
        conn.execute(f"create event trigger fail_publish on ddl_command_end "
                     f"when tag in ('{statement.upper()}') execute function fail_publish()")
    with pytest.raises(PublishError, match="injected failure"):
        run(warehouse_url, "run_3", D2)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("drop event trigger fail_publish")
    # Schemas, tables, history, log row, leftovers and grants are all as they were.
    assert state(warehouse_url) == before
    assert rows(warehouse_url, f"select max(version) from {PUB}.dim_customers") == [(2,)]
    assert run(warehouse_url, "run_3", D2).dropped == ("fct_removed_model",)
    assert rows(warehouse_url, f"select max(version) from {PUB}.dim_customers") == [(3,)]


def test_leftovers_in_the_build_schema_are_dropped_not_published(warehouse_url: str) -> None:
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        # Not a mart: made by hand in the published schema (leaves with its generation).
        conn.execute(f"create table {PUB}.made_by_hand as select 1 as id")
    build(warehouse_url, 2)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        # A model removed from the project, dbt's own leftovers, a view on a mart.
        conn.execute(f"create table {BUILD}.fct_removed_model as select 1 as id")
        conn.execute(f"create table {BUILD}.dim_customers__dbt_backup as select 1 as id")
        conn.execute(f"create table {BUILD}.kpi_retention_monthly__dbt_tmp "
                     f"(like {BUILD}.kpi_retention_monthly)")
        conn.execute(f"create view {BUILD}.customers_v as select * from {BUILD}.dim_customers")
        conn.execute(f"create sequence {BUILD}.stray_seq")
    result = run(warehouse_url, "run_2", D2)
    assert result.dropped == ("customers_v", "dim_customers__dbt_backup",
                              "fct_removed_model", "kpi_retention_monthly__dbt_tmp",
                              "stray_seq")
    assert "dropped 5 leftover(s)" in result.summary()
    assert relations(warehouse_url, PUB) == ["dim_customers", "kpi_history",
                                             "kpi_retention_monthly"]
    # The previous generation, with the hand-made table, is now the build schema ...
    assert relations(warehouse_url, BUILD) == ["dim_customers", "kpi_retention_monthly",
                                               "made_by_hand"]
    build(warehouse_url, 3)
    # ... and the next publish drops that table too.
    assert run(warehouse_url, "run_3", D2).dropped == ("made_by_hand",)
    assert relations(warehouse_url, BUILD) == list(MARTS)


def test_a_leftover_something_else_depends_on_fails_the_publish(warehouse_url: str) -> None:
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    build(warehouse_url, 2)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute(f"create table {BUILD}.fct_removed_model as select 1 as id")
        conn.execute("create schema sandbox")
        conn.execute(f"create view sandbox.v as select * from {BUILD}.fct_removed_model")
    before = state(warehouse_url)
    with pytest.raises(PublishError, match="drop the leftover table.*fct_removed_model"):
        run(warehouse_url, "run_2", D2)
    assert state(warehouse_url) == before  # no cascade: nothing dropped, nothing published
    assert rows(warehouse_url, "select count(*) from sandbox.v") == [(1,)]


def test_a_build_schema_not_rebuilt_since_the_last_publish_is_refused(
        warehouse_url: str) -> None:
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    build(warehouse_url, 2)
    run(warehouse_url, "run_2", D2)
    # The build schema now holds generation 1. Publishing it again (a retried task whose
    # commit was not acknowledged, a task cleared by hand) would bring yesterday back.
    before = state(warehouse_url)
    with pytest.raises(PublishError, match="not been rebuilt since the last publish.*run_2"):
        run(warehouse_url, "run_2", D2)
    assert state(warehouse_url) == before
    # The nightly build starts with ensure_build_schema, which clears the mark.
    ensure_build_schema(warehouse_url, BUILD)
    assert rows(warehouse_url, "select obj_description(oid, 'pg_namespace') from "
                               "pg_namespace where nspname = %s", (BUILD,)) == [(None,)]
    build(warehouse_url, 3)
    assert run(warehouse_url, "run_3", D2).row_counts["dim_customers"] == 5


def test_ensure_build_schema_creates_it_and_keeps_its_tables(warehouse_url: str) -> None:
    ensure_build_schema(warehouse_url, BUILD)
    assert schema_oid(warehouse_url, BUILD) is not None
    build(warehouse_url, 1)
    oid = schema_oid(warehouse_url, BUILD)
    ensure_build_schema(warehouse_url, BUILD)
    assert schema_oid(warehouse_url, BUILD) == oid
    assert relations(warehouse_url, BUILD) == list(MARTS)


def test_by_default_the_marts_of_the_dbt_project_are_published(warehouse_url: str,
                                                               dbt_manifest) -> None:
    marts = dbt_marts(dbt_manifest)
    assert {"dim_customers", "fct_defections", "kpi_retention_monthly",
            "mart_accounts_at_risk"} <= set(marts)
    assert not {m for m in marts if m.startswith(("stg_", "int_"))}
    build(warehouse_url, 1)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        for mart in set(marts) - set(MARTS):
            conn.execute(f"create table {BUILD}.{mart} as select 1 as id")
        conn.execute(f"create table {BUILD}.fct_removed_model as select 1 as id")
    result = publish(warehouse_url, build_schema=BUILD, publish_schema=PUB, run_id="run_1",
                     as_of_date=D1)
    assert result.tables == tuple(marts)
    assert result.dropped == ("fct_removed_model",)
    assert relations(warehouse_url, PUB) == sorted([*marts, "kpi_history"])


def wait_for_lock_waiters(url: str, oid: int, mode: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while rows(url, "select count(*) from pg_locks where relation = %s and mode = %s "
                    "and not granted", (oid, mode)) == [(0,)]:
        assert time.monotonic() < deadline, f"nobody waited for {mode} on {oid}"
        time.sleep(0.02)


def test_a_query_queued_behind_the_swap_reads_the_new_table(warehouse_url: str) -> None:
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    build(warehouse_url, 2)
    oid = rows(warehouse_url, f"select '{PUB}.kpi_retention_monthly'::regclass::oid")[0][0]
    outcome: dict[str, object] = {}

    def publisher() -> None:
        outcome["publish"] = run(warehouse_url, "run_2", D2)

    def reader() -> None:
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            outcome["read"] = conn.execute(f"select count(*), min(version), max(version) "
                                           f"from {PUB}.kpi_retention_monthly").fetchone()

    with psycopg.connect(warehouse_url) as holder:  # a running BI query delays the swap
        holder.execute(f"lock table {PUB}.kpi_retention_monthly in access share mode")
        threads = [threading.Thread(target=publisher)]
        threads[0].start()
        wait_for_lock_waiters(warehouse_url, oid, "AccessExclusiveLock")
        threads.append(threading.Thread(target=reader))  # queues behind the publisher
        threads[1].start()
        wait_for_lock_waiters(warehouse_url, oid, "AccessShareLock")
        holder.rollback()
    for t in threads:
        t.join(timeout=30)
    assert isinstance(outcome.get("publish"), PublishResult), outcome
    # The waiting query found the old table dropped and read the new one, whole.
    assert outcome["read"] == (3, 2, 2)


def test_readers_never_see_a_missing_empty_or_mixed_table(warehouse_url: str) -> None:
    rows_per_build, generations = 500, 25
    build(warehouse_url, 0, months=rows_per_build, customers=rows_per_build)
    run(warehouse_url, "run_0", D1)
    # Two READ COMMITTED readers, one per mart: one with a server-side prepared statement
    # (its cached plan names the old tables until the swap invalidates it), one without.
    readers = {"kpi_retention_monthly": True, "dim_customers": False}
    seen: dict[str, list[tuple[int, int, int]]] = {t: [] for t in readers}
    errors: list[BaseException] = []
    stop = threading.Event()

    def read(table: str, prepare: bool) -> None:
        query = f"select count(*), min(version), max(version) from {PUB}.{table}"
        try:
            with psycopg.connect(warehouse_url, autocommit=True) as conn:
                while not stop.is_set():
                    seen[table].append(conn.execute(query, prepare=prepare).fetchone())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=read, args=item, daemon=True) for item in readers.items()]
    for t in threads:
        t.start()
    # Right after each publish, a prepared statement over both marts (planned before the
    # swap) reads the new generation of both.
    both = (f"select * from (select count(*), min(version), max(version) from "
            f"{PUB}.dim_customers) d, (select count(*), min(version), max(version) from "
            f"{PUB}.kpi_retention_monthly) k")
    try:
        with psycopg.connect(warehouse_url, autocommit=True) as checker:
            for version in range(1, generations + 1):
                build(warehouse_url, version, months=rows_per_build, customers=rows_per_build)
                assert checker.execute(both, prepare=True).fetchone() \
                    == (rows_per_build, version - 1, version - 1) * 2
                run(warehouse_url, f"run_{version}", D1, lock_timeout="5s")
                assert checker.execute(both, prepare=True).fetchone() \
                    == (rows_per_build, version, version) * 2
                time.sleep(0.01)  # let the readers get a query in on every generation
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    for table, reads in seen.items():
        assert len(reads) >= 500, f"the {table} reader ran only {len(reads)} queries"
        bad = [r for r in reads if r[0] != rows_per_build or r[1] != r[2]]
        assert not bad, f"{len(bad)} of {len(reads)} reads of {table} saw a missing, empty " \
                        f"or mixed table: {bad[:5]}"
        versions = [r[1] for r in reads]
        assert versions == sorted(versions), f"a {table} reader went back to an older " \
                                             "generation"
        assert len(set(versions)) >= generations // 2, f"saw only generations {set(versions)}"
    assert rows(warehouse_url, "select count(*) from dw_meta.publish_log") \
        == [(generations + 1,)]


def restore(url: str) -> PublishResult:
    return restore_previous(url, build_schema=BUILD, publish_schema=PUB)


def history(url: str) -> list[tuple]:
    return rows(url, f"select as_of_date, run_id, count(*), min(version), max(version) "
                     f"from {PUB}.kpi_history group by 1, 2 order by 1")


def reporter_reads(url: str) -> dict[str, bool]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            "select n.nspname || '.' || c.relname, has_table_privilege('dw_reporter', c.oid, "
            "'SELECT') and has_schema_privilege('dw_reporter', n.oid, 'USAGE') "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname in (%s, %s) and c.relkind = 'r'", (PUB, BUILD)).fetchall())


def test_restore_previous_publishes_the_replaced_generation_again(warehouse_url: str,
                                                                  monkeypatch, capsys) -> None:
    """docs/runbook.md's "Restore the previous published build": after a publish the build
    schema holds the generation it replaced; restoring swaps them back."""
    roles.setup_roles(warehouse_url, build_schema=BUILD, publish_schema=PUB)
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    first = published_checksums(warehouse_url, PUB)
    build(warehouse_url, 2, months=4, customers=7)
    run(warehouse_url, "run_2", D2)
    second = published_checksums(warehouse_url, PUB)
    oids = {s: schema_oid(warehouse_url, s) for s in (BUILD, PUB)}

    restored = restore(warehouse_url)
    assert (restored.run_id, restored.as_of_date) == ("run_1", D1)
    assert restored.row_counts == {"dim_customers": 5, "kpi_retention_monthly": 3}
    # the schemas were swapped back (no copy), and the published marts are run_1's
    assert schema_oid(warehouse_url, PUB) == oids[BUILD]
    assert published_checksums(warehouse_url, PUB) == first
    assert history(warehouse_url) == [(D1, "run_1", 3, 1, 1)]
    assert rows(warehouse_url, "select run_id, as_of_date from dw_meta.publish_log "
                               "order by id") == [("run_1", D1), ("run_2", D2), ("run_1", D1)]
    # the reporter reads the restored marts and nothing of the undone build
    assert all(readable == name.startswith(f"{PUB}.")
               for name, readable in reporter_reads(warehouse_url).items())
    # the undone build waits in the build schema, and cannot be published without a build
    assert rows(warehouse_url, f"select max(version) from {BUILD}.dim_customers") == [(2,)]
    with pytest.raises(PublishError, match="not been rebuilt since the last publish"):
        run(warehouse_url, "run_2", D2)

    # Restoring again (the command line) undoes the restore.
    monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
    with pytest.raises(SystemExit) as done:
        cli.main(["restore-previous"])
    assert done.value.code == 0
    assert "restored run run_2 (as-of 2026-10-31) to analytics" in capsys.readouterr().out
    assert published_checksums(warehouse_url, PUB) == second
    assert history(warehouse_url) == [(D1, "run_1", 3, 1, 1), (D2, "run_2", 4, 2, 2)]

    # The next night builds and publishes as usual.
    build(warehouse_url, 3)
    assert run(warehouse_url, "run_3", D2).row_counts["dim_customers"] == 5
    assert history(warehouse_url) == [(D1, "run_1", 3, 1, 1), (D2, "run_3", 3, 3, 3)]


def test_restore_is_refused_when_the_previous_generation_is_gone(warehouse_url: str) -> None:
    with pytest.raises(PublishError, match="does not hold the previous published generation"):
        restore(warehouse_url)  # nothing published yet
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    before = state(warehouse_url)
    with pytest.raises(PublishError, match="run_1 was the first publish"):
        restore(warehouse_url)
    assert state(warehouse_url) == before

    build(warehouse_url, 2)
    run(warehouse_url, "run_2", D2)
    ensure_build_schema(warehouse_url, BUILD)  # the next night's dbt build has begun
    before = state(warehouse_url)
    with pytest.raises(PublishError, match="a dbt build has run since the last publish"):
        restore(warehouse_url)
    assert state(warehouse_url) == before


def test_restore_after_a_rerun_of_the_same_day(warehouse_url: str) -> None:
    """A rerun of the same as-of date replaced that date's KPI history; restoring the
    previous generation writes its KPIs back."""
    build(warehouse_url, 1)
    run(warehouse_url, "run_a", D2)
    before = published_checksums(warehouse_url, PUB)
    build(warehouse_url, 2, months=5)
    run(warehouse_url, "run_b", D2)
    assert history(warehouse_url) == [(D2, "run_b", 5, 2, 2)]
    assert restore(warehouse_url).run_id == "run_a"
    assert history(warehouse_url) == [(D2, "run_a", 3, 1, 1)]
    assert published_checksums(warehouse_url, PUB) == before
