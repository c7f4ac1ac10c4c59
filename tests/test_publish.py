"""Write-audit-publish: the swap into the published schema, its log and KPI history, and
what readers and the published schema see when a publish fails or runs concurrently."""

from __future__ import annotations

import threading
import time
from datetime import date

import psycopg
import pytest

from defection_warehouse.publish import (
    PublishError,
    PublishResult,
    publish,
    published_checksums,
)

BUILD, PUB = "analytics_build", "analytics"
D1, D2 = date(2026, 9, 30), date(2026, 10, 31)


def build(url: str, version: int, *, months: int = 3, customers: int = 5) -> None:
    """A synthetic nightly build: every row of a generation carries its version."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"create schema if not exists {BUILD}")
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
    return publish(url, build_schema=BUILD, publish_schema=PUB, run_id=run_id,
                   as_of_date=as_of, **kwargs)


def test_first_and_second_publish(warehouse_url: str) -> None:
    build(warehouse_url, 1)
    first = run(warehouse_url, "run_1", D1)
    assert first.tables == ("dim_customers", "kpi_retention_monthly")
    assert first.row_counts == {"dim_customers": 5, "kpi_retention_monthly": 3}
    assert first.history_rows == 3
    assert "published 2 tables (8 rows)" in first.summary()
    assert rows(warehouse_url, f"select distinct version from {PUB}.kpi_retention_monthly") \
        == [(1,)]
    # The build was moved, not copied.
    assert rows(warehouse_url, "select count(*) from pg_tables where schemaname = %s",
                (BUILD,)) == [(0,)]

    build(warehouse_url, 2, months=4, customers=7)
    second = run(warehouse_url, "run_2", D2)
    assert second.row_counts == {"dim_customers": 7, "kpi_retention_monthly": 4}
    assert rows(warehouse_url, f"select count(*), min(version), max(version) "
                               f"from {PUB}.dim_customers") == [(7, 2, 2)]
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
        run(warehouse_url, "run_2", D2)  # emptied by the first publish
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
    # A subset is fine and leaves the other build tables in place.
    result = run(warehouse_url, "run_2", D2, tables=["dim_customers"])
    assert result.tables == ("dim_customers",) and result.history_rows is None
    assert rows(warehouse_url, f"select max(version) from {PUB}.kpi_retention_monthly") == [(1,)]


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


def test_failure_mid_swap_rolls_everything_back(warehouse_url: str) -> None:
    build(warehouse_url, 1)
    run(warehouse_url, "run_1", D1)
    with psycopg.connect(warehouse_url) as conn:  # a dependant object blocks the drop
        conn.execute(f"create view {PUB}.customers_v as select * from {PUB}.dim_customers")
    before = published_checksums(warehouse_url, PUB)
    build(warehouse_url, 2)
    with pytest.raises(PublishError, match=f"drop the published {PUB}.dim_customers"):
        run(warehouse_url, "run_2", D2)
    # The history insert and the log row written before the failure are gone too.
    assert published_checksums(warehouse_url, PUB) == before
    assert rows(warehouse_url, "select count(*) from dw_meta.publish_log") == [(1,)]


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
    build(warehouse_url, 0, months=rows_per_build)
    run(warehouse_url, "run_0", D1)
    seen: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            with psycopg.connect(warehouse_url, autocommit=True) as conn:
                while not stop.is_set():
                    seen.append(conn.execute(
                        f"select count(*), min(version), max(version) "
                        f"from {PUB}.kpi_retention_monthly").fetchone())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for version in range(1, generations + 1):
            build(warehouse_url, version, months=rows_per_build)
            run(warehouse_url, f"run_{version}", D1, lock_timeout="5s")
            time.sleep(0.01)  # let the reader get a query in on every generation
    finally:
        stop.set()
        reader.join(timeout=30)
    assert not errors, errors
    assert len(seen) >= 500, f"the reader ran only {len(seen)} queries"
    bad = [r for r in seen if r[0] != rows_per_build or r[1] != r[2]]
    assert not bad, f"{len(bad)} of {len(seen)} reads saw a missing, empty or mixed table: " \
                    f"{bad[:5]}"
    versions = [r[1] for r in seen]
    assert versions == sorted(versions), "a reader went back to an older generation"
    assert len(set(versions)) >= generations // 2, f"saw only generations {set(versions)}"
    assert rows(warehouse_url, "select count(*) from dw_meta.publish_log") \
        == [(generations + 1,)]
