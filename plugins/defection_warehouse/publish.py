"""Write-audit-publish: swap a validated build into the published schema.

dbt builds the marts into the build schema; once the quality gate has passed, `publish`
moves every table of the build into the published schema in one transaction:

* each published table is dropped and the build table of the same name is moved in with
  ``alter table ... set schema`` (a catalog update: no data is copied, so the swap takes
  milliseconds whatever the size of the marts);
* both steps need an ACCESS EXCLUSIVE lock on the table, held until commit, so a reader
  either runs before the swap (old rows) or waits and then reads the new table; it never
  sees a missing table, an empty one or a mix. A READ COMMITTED query (what BI tools
  use) that waited re-resolves the table name and takes its snapshot after the lock, so
  it reads the new rows; a REPEATABLE READ transaction that began before the build was
  committed would find the new table empty, so readers should not hold one open across
  the nightly run;
* ``lock_timeout`` bounds the wait for readers that are already running: a long BI query
  makes the publish fail (and be retried) instead of queueing every other reader behind
  it;
* the run is logged in ``dw_meta.publish_log`` and the KPIs are appended to
  ``<published>.kpi_history`` (one set of rows per as-of date) in the same transaction.

Any error rolls the whole transaction back: the published schema stays exactly as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from defection_warehouse.config import META_SCHEMA
from defection_warehouse.db import connect, table_checksum
from defection_warehouse.roles import REPORTER_ROLE

log = logging.getLogger(__name__)

KPI_TABLE = "kpi_retention_monthly"
HISTORY_TABLE = "kpi_history"
PUBLISH_LOG_TABLE = "publish_log"
# Columns that differ between two publishes of the same data: left out of checksums.
RUN_METADATA_COLUMNS = ("run_id", "published_at")
HISTORY_COLUMNS = ("run_id", "as_of_date", "published_at")


class PublishError(RuntimeError):
    """The publish failed and was rolled back; the published schema is unchanged."""


@dataclass(frozen=True)
class PublishResult:
    run_id: str
    as_of_date: date
    build_schema: str
    publish_schema: str
    tables: tuple[str, ...]
    row_counts: dict[str, int]
    history_rows: int | None
    published_at: datetime
    seconds: float

    def summary(self) -> str:
        total = sum(self.row_counts.values())
        text = (f"published {len(self.tables)} tables ({total:,} rows) from "
                f"{self.build_schema} to {self.publish_schema} for as-of {self.as_of_date} "
                f"(run {self.run_id}) in {self.seconds:.2f}s")
        if self.history_rows is not None:
            text += f"; {HISTORY_TABLE}: {self.history_rows} rows for {self.as_of_date}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (for an Airflow task's return value)."""
        return {"run_id": self.run_id, "as_of_date": self.as_of_date.isoformat(),
                "tables": list(self.tables), "row_counts": dict(self.row_counts),
                "history_rows": self.history_rows,
                "published_at": self.published_at.isoformat(),
                "seconds": round(self.seconds, 3)}

    def __str__(self) -> str:
        return self.summary()


class _Transaction:
    """Runs the statements of one publish, turning database errors into PublishError."""

    def __init__(self, conn: psycopg.Connection, lock_timeout: str) -> None:
        self.conn = conn
        self.lock_timeout = lock_timeout

    def run(self, what: str, query: sql.Composable | str,
            params: Sequence[Any] | None = None) -> psycopg.Cursor:
        try:
            return self.conn.execute(query, params)
        except psycopg.errors.LockNotAvailable as exc:
            raise PublishError(
                f"could not {what} within lock_timeout {self.lock_timeout} (another session "
                "holds a lock on it, e.g. a long-running query); nothing was published"
            ) from exc
        except psycopg.Error as exc:
            raise PublishError(f"could not {what}: {_first_line(exc)}; nothing was published"
                               ) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _ident(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def base_tables(conn: psycopg.Connection, schema: str) -> list[str]:
    """Ordinary tables of a schema (no views, no partitions), sorted."""
    rows = conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind = 'r' and not c.relispartition order by 1",
        (schema,),
    )
    return [r[0] for r in rows]


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    """(name, SQL type) of a table's columns in order."""
    rows = conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
        "where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped "
        "order by a.attnum",
        (_ident(schema, table).as_string(conn),),
    )
    return [(r[0], r[1]) for r in rows]


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is not None


def _tables_to_publish(conn: psycopg.Connection, build_schema: str,
                       tables: Sequence[str] | None) -> list[str]:
    available = base_tables(conn, build_schema)
    if not available:
        raise PublishError(f"build schema {build_schema!r} has no tables (did the dbt build "
                           "run?); nothing was published")
    if tables is None:
        chosen = available
    elif not tables:
        raise PublishError("no tables given to publish; nothing was published")
    else:
        missing = sorted(set(tables) - set(available))
        if missing:
            raise PublishError(f"table(s) {', '.join(missing)} not found in build schema "
                               f"{build_schema!r}; nothing was published")
        chosen = sorted(set(tables))
    if HISTORY_TABLE in chosen:
        raise PublishError(f"{build_schema}.{HISTORY_TABLE}: that name is reserved for the "
                           "published KPI history; nothing was published")
    return chosen


def _ensure_meta(tx: _Transaction, publish_schema: str) -> None:
    for schema in (publish_schema, META_SCHEMA):
        # Only when missing: `create schema if not exists` needs CREATE on the database
        # even when the schema exists, which the transformer role does not have.
        found = tx.run(f"look up schema {schema}", "select 1 from pg_namespace where "
                       "nspname = %s", (schema,)).fetchone()
        if found is None:
            tx.run(f"create schema {schema}",
                   sql.SQL("create schema {}").format(sql.Identifier(schema)))
    tx.run(f"create {META_SCHEMA}.{PUBLISH_LOG_TABLE}", sql.SQL(
        "create table if not exists {} ("
        " id bigint generated always as identity primary key,"
        " run_id text not null, as_of_date date not null, published_at timestamptz not null,"
        " build_schema text not null, publish_schema text not null,"
        " tables text[] not null, row_counts jsonb not null)"
    ).format(_ident(META_SCHEMA, PUBLISH_LOG_TABLE)))


def _lock(tx: _Transaction, schema: str, tables: Sequence[str]) -> None:
    # One statement per table (sorted: a fixed order cannot deadlock with another publish)
    # so a timeout names the table that could not be locked.
    for table in tables:
        tx.run(f"lock {schema}.{table}", sql.SQL("lock table {} in access exclusive mode")
               .format(_ident(schema, table)))


def _row_counts(tx: _Transaction, schema: str, tables: Sequence[str]) -> dict[str, int]:
    return {t: int(tx.run(f"count the rows of {schema}.{t}", sql.SQL("select count(*) from {}")
                          .format(_ident(schema, t))).fetchone()[0])
            for t in tables}


def _record_kpi_history(tx: _Transaction, build_schema: str, publish_schema: str,
                        run_id: str, as_of_date: date) -> int:
    """Replace the as-of date's rows of kpi_history with the KPIs being published."""
    columns = _columns(tx.conn, build_schema, KPI_TABLE)
    clash = sorted({name for name, _ in columns} & set(HISTORY_COLUMNS))
    if clash:
        raise PublishError(f"{build_schema}.{KPI_TABLE} has column(s) {', '.join(clash)} that "
                           f"{HISTORY_TABLE} adds itself; nothing was published")
    history = _ident(publish_schema, HISTORY_TABLE)
    what = f"update {publish_schema}.{HISTORY_TABLE}"
    defs = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns]
    tx.run(what, sql.SQL(
        "create table if not exists {} ({}, run_id text not null, as_of_date date not null, "
        "published_at timestamptz not null)").format(history, sql.SQL(", ").join(defs)))
    # A KPI column added to the mart later is added to the history (older rows get null).
    present = {name for name, _ in _columns(tx.conn, publish_schema, HISTORY_TABLE)}
    for name, type_ in columns:
        if name not in present:
            tx.run(what, sql.SQL("alter table {} add column {} {}").format(
                history, sql.Identifier(name), sql.SQL(type_)))
    tx.run(what, sql.SQL("create index if not exists {} on {} (as_of_date)").format(
        sql.Identifier(f"{HISTORY_TABLE}__as_of_date"), history))
    tx.run(what, sql.SQL("delete from {} where as_of_date = %s").format(history), (as_of_date,))
    names = sql.SQL(", ").join(sql.Identifier(n) for n, _ in columns)
    cur = tx.run(what, sql.SQL(
        "insert into {} ({}, run_id, as_of_date, published_at) "
        "select {}, %s, %s, now() from {}").format(
            history, names, names, _ident(build_schema, KPI_TABLE)), (run_id, as_of_date))
    return cur.rowcount


def _swap(tx: _Transaction, build_schema: str, publish_schema: str,
          tables: Sequence[str]) -> None:
    for table in tables:
        tx.run(f"drop the published {publish_schema}.{table}", sql.SQL(
            "drop table if exists {}").format(_ident(publish_schema, table)))
        tx.run(f"move {build_schema}.{table} to {publish_schema}", sql.SQL(
            "alter table {} set schema {}").format(
                _ident(build_schema, table), sql.Identifier(publish_schema)))


def _grant_reporter(tx: _Transaction, publish_schema: str, tables: Sequence[str]) -> None:
    # Grants belong to the table, and a moved table was created in the build schema, so
    # the published schema's default privileges never applied to it.
    if not _role_exists(tx.conn, REPORTER_ROLE):
        return
    for table in tables:
        tx.run(f"grant select on {publish_schema}.{table} to {REPORTER_ROLE}", sql.SQL(
            "grant select on table {} to {}").format(
                _ident(publish_schema, table), sql.Identifier(REPORTER_ROLE)))


def _log_publish(tx: _Transaction, run_id: str, as_of_date: date, build_schema: str,
                 publish_schema: str, counts: dict[str, int]) -> datetime:
    row = tx.run(f"write {META_SCHEMA}.{PUBLISH_LOG_TABLE}", sql.SQL(
        "insert into {} (run_id, as_of_date, published_at, build_schema, publish_schema, "
        "tables, row_counts) values (%s, %s, now(), %s, %s, %s, %s) returning published_at"
    ).format(_ident(META_SCHEMA, PUBLISH_LOG_TABLE)), (
        run_id, as_of_date, build_schema, publish_schema, list(counts), Jsonb(counts),
    )).fetchone()
    return row[0]


def publish(warehouse_url: str, *, build_schema: str, publish_schema: str, run_id: str,
            as_of_date: date, tables: Sequence[str] | None = None,
            lock_timeout: str = "10s") -> PublishResult:
    """Swap the build's tables into the published schema in one transaction (see module doc).

    Raises PublishError (after a rollback: nothing changed) when the build is empty, a
    requested table is missing, a lock is not granted within `lock_timeout`, or any
    statement fails.
    """
    if build_schema == publish_schema:
        raise PublishError(f"build and published schema are both {build_schema!r}")
    started = time.monotonic()
    try:
        with (connect(warehouse_url, autocommit=True, connect_timeout=10) as conn,
              conn.transaction()):
            result = _publish(_Transaction(conn, lock_timeout), build_schema,
                              publish_schema, run_id, as_of_date, tables)
    except psycopg.Error as exc:  # connecting or committing
        raise PublishError(f"publish {build_schema} -> {publish_schema} failed: "
                           f"{_first_line(exc)}") from exc
    done = PublishResult(**result, seconds=time.monotonic() - started)
    log.info("%s", done.summary())
    return done


def _publish(tx: _Transaction, build_schema: str, publish_schema: str, run_id: str,
             as_of_date: date, tables: Sequence[str] | None) -> dict[str, Any]:
    tx.run(f"set lock_timeout to {tx.lock_timeout!r}",
           "select set_config('lock_timeout', %s, true)", (tx.lock_timeout,))
    chosen = _tables_to_publish(tx.conn, build_schema, tables)
    _ensure_meta(tx, publish_schema)
    # Work that does not touch the published tables comes first, so the locks that block
    # readers are held only for the swap itself.
    _lock(tx, build_schema, chosen)
    counts = _row_counts(tx, build_schema, chosen)
    history_rows = None
    if KPI_TABLE in chosen:
        history_rows = _record_kpi_history(tx, build_schema, publish_schema, run_id,
                                           as_of_date)
    published_at = _log_publish(tx, run_id, as_of_date, build_schema, publish_schema, counts)
    existing = sorted(set(chosen) & set(base_tables(tx.conn, publish_schema)))
    _lock(tx, publish_schema, existing)
    _swap(tx, build_schema, publish_schema, chosen)
    granted = chosen + ([HISTORY_TABLE] if history_rows is not None else [])
    _grant_reporter(tx, publish_schema, granted)
    return {"run_id": run_id, "as_of_date": as_of_date, "build_schema": build_schema,
            "publish_schema": publish_schema, "tables": tuple(chosen), "row_counts": counts,
            "history_rows": history_rows, "published_at": published_at}


def published_checksums(warehouse_url: str, schema: str) -> dict[str, tuple[int, str]]:
    """Row count and order-independent md5 of every table of `schema` (run metadata
    columns excluded), to compare the published schema before and after a run."""
    with connect(warehouse_url) as conn:
        return {t: table_checksum(conn, f"{schema}.{t}", exclude=RUN_METADATA_COLUMNS)
                for t in base_tables(conn, schema)}
