"""Write-audit-publish: a blue/green swap of the build schema and the published schema.

dbt builds the marts into the build schema, a work area that persists from night to
night. Once the quality gate has passed, `publish` makes that build the published schema
in one transaction:

* **Checks** (nothing changed yet): every expected mart is a table of the build schema.
  The expected marts are `tables`, by default the models dbt builds into the build schema
  according to the dbt manifest. The build schema must also have been rebuilt since the
  last publish: each publish marks the schema it swaps out, and `ensure_build_schema`
  (called before every dbt build) clears the mark, so a publish repeated without a
  build, e.g. a retry after a commit whose answer was lost, cannot bring the previous
  generation back.
* **Leftovers**: every other relation of the build schema (a model removed from the
  project, dbt's ``__dbt_tmp``/``__dbt_backup`` relations, a hand-made table) is dropped,
  each one logged, so that only expected marts are published. Dropping rather than
  failing keeps the nightly publish going; the build schema is the pipeline's work area.
  The drops do not cascade: if something outside the build depends on a leftover, the
  publish fails and nothing changes.
* **History and log**: the KPIs being published replace the as-of date's rows of
  ``<published>.kpi_history``, and the run is written to ``dw_meta.publish_log``.
* **Swap**: with ACCESS EXCLUSIVE locks on the tables of the published schema,
  ``alter schema <published> rename to <tmp>``, ``<build> to <published>`` and ``<tmp> to
  <build>``; then the tables publish owns (``kpi_history``) are moved back into the
  published schema with ``alter table ... set schema``. Renames only update the catalog:
  no data is copied, so the swap takes milliseconds. The first publish, when there is no
  published schema yet, renames the build schema and creates an empty build schema.
  Afterwards the build schema holds the previous published generation, which the next
  dbt build replaces. A relation of the published
  schema that is neither a mart of this build nor owned by publish leaves the published
  schema with that generation and is dropped as a leftover by the next publish.
* **Grants**: privileges belong to the schema and follow it through a rename, so they
  are applied again. ``dw_reporter`` (when the role exists) gets USAGE on the published
  schema and SELECT on all its tables, and loses all privileges on the build schema and
  its tables. Its default privileges (``roles.setup_roles`` sets them on the published
  schema) are moved back to the published schema too, so tables that dbt creates in the
  build schema are never readable by the reporter.

Readers: a READ COMMITTED query (what BI tools use) either runs before the swap and reads
the old tables, or waits for the swap's locks. Once the locks are released it resolves the
table names again and reads the new tables (PostgreSQL repeats a name lookup after a lock
wait that saw catalog changes, and a schema rename invalidates cached plans). It never sees
a missing table, an empty one or a mix. A REPEATABLE READ transaction that began before the
build was committed would find the new tables empty, so readers should not hold one open
across the nightly run. ``lock_timeout`` bounds the wait for queries that are already
running: a long BI query makes the publish fail (and be retried) instead of queueing every
other reader behind it.

Any error rolls the whole transaction back: the published schema, the build schema and
their grants stay exactly as they were.

**Restore** (`restore_previous`, `dw restore-previous`): until the next dbt build, the build
schema still holds the generation the last publish replaced, and its mark names the run
that replaced it. Restoring swaps the two schemas back in one transaction, with the same
locks and grants as a publish: the replaced generation is published again, the undone
run's rows leave kpi_history (unless they were there before it, when a restore is undone)
and the restored as-of date's KPIs are written again, publish_log gets a row for the
restored run, and the build schema, now holding the undone generation, is marked so that
it cannot be published without a new build.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from defection_warehouse.config import META_SCHEMA
from defection_warehouse.db import connect, one_row, table_checksum
from defection_warehouse.publish.roles import REPORTER_ROLE
from defection_warehouse.transform.dbt_runner import DBT_DIR

log = logging.getLogger(__name__)

KPI_TABLE = "kpi_retention_monthly"
HISTORY_TABLE = "kpi_history"
# Tables publish itself keeps in the published schema: they stay there through every swap.
PUBLISH_OWNED = (HISTORY_TABLE,)
PUBLISH_LOG_TABLE = "publish_log"
# Columns that differ between two publishes of the same data: left out of checksums.
RUN_METADATA_COLUMNS = ("run_id", "published_at", "built_at")
HISTORY_COLUMNS = ("run_id", "as_of_date", "published_at")
# The comment publish puts on the schema it swaps out; ensure_build_schema removes it.
SWAPPED_OUT_MARK = "dw: previous published generation"
MANIFEST = DBT_DIR / "target" / "manifest.json"
# DROP keyword per relation kind, in the order leftovers are dropped (dependants first).
_DROP_KEYWORDS = {"v": "view", "m": "materialized view", "f": "foreign table",
                  "r": "table", "p": "table", "S": "sequence"}
_DROP_ORDER = ("view", "materialized view", "foreign table", "table", "sequence")


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
    # Relations that were not expected marts, dropped from the build schema before the swap.
    dropped: tuple[str, ...] = ()

    def summary(self) -> str:
        total = sum(self.row_counts.values())
        text = (f"published {len(self.tables)} tables ({total:,} rows) from "
                f"{self.build_schema} to {self.publish_schema} for as-of {self.as_of_date} "
                f"(run {self.run_id}) in {self.seconds:.2f}s")
        if self.history_rows is not None:
            text += f"; {HISTORY_TABLE}: {self.history_rows} rows for {self.as_of_date}"
        if self.dropped:
            text += (f"; dropped {len(self.dropped)} leftover(s) from {self.build_schema}: "
                     f"{', '.join(self.dropped)}")
        return text

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (for an Airflow task's return value)."""
        return {"run_id": self.run_id, "as_of_date": self.as_of_date.isoformat(),
                "tables": list(self.tables), "row_counts": dict(self.row_counts),
                "history_rows": self.history_rows,
                "published_at": self.published_at.isoformat(),
                "seconds": round(self.seconds, 3), "dropped": list(self.dropped)}

    def __str__(self) -> str:
        return self.summary()


class _Transaction:
    """Runs the statements of one publish, turning database errors into PublishError."""

    def __init__(self, conn: psycopg.Connection, lock_timeout: str) -> None:
        self.conn = conn
        self.lock_timeout = lock_timeout

    def run(self, what: str, query: sql.Composed | sql.SQL | str,
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


def _relations(conn: psycopg.Connection, schema: str) -> list[tuple[str, str]]:
    """(name, relkind) of the relations of a schema that exist on their own: tables, views,
    materialized views, foreign tables and sequences no column owns (indexes, partitions
    and owned sequences go with their table), sorted."""
    rows = conn.execute(
        "select c.relname, c.relkind from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') "
        "and not c.relispartition "
        "and not (c.relkind = 'S' and exists (select 1 from pg_depend d "
        "  where d.classid = 'pg_class'::regclass and d.objid = c.oid "
        "  and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i'))) "
        "order by 1",
        (schema,),
    )
    return [(r[0], r[1]) for r in rows]


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


def _schema(conn: psycopg.Connection, schema: str) -> tuple[str, str | None] | None:
    """(owner, comment) of a schema, None when it does not exist."""
    return conn.execute(
        "select pg_get_userbyid(nspowner), obj_description(oid, 'pg_namespace') "
        "from pg_namespace where nspname = %s", (schema,)).fetchone()


def dbt_marts(manifest: Path = MANIFEST) -> list[str]:
    """The relations dbt builds into the build schema, from the dbt manifest: every enabled
    model or seed without a schema of its own (generate_schema_name puts those in the
    target schema, the build schema), ephemeral models excepted. Sorted."""
    try:
        nodes = json.loads(manifest.read_text())["nodes"].values()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{manifest} is missing: build it with `make dbt-manifest` "
                                "(dbt parse; no database needed)") from exc
    marts = {n.get("alias") or n["name"] for n in nodes
             if n["resource_type"] in ("model", "seed")
             and n["config"].get("enabled", True)
             and n["config"].get("schema") is None
             and n["config"].get("materialized") != "ephemeral"}
    if not marts:
        raise ValueError(f"{manifest} lists no model that is built into the build schema")
    return sorted(marts)


def _expected_marts(tables: Sequence[str] | None) -> list[str]:
    if tables is not None:
        return list(tables)
    try:
        return dbt_marts()
    except (OSError, ValueError, KeyError) as exc:
        raise PublishError(f"cannot tell which marts to publish: {exc}; nothing was "
                           "published") from exc


def _tables_to_publish(conn: psycopg.Connection, build_schema: str,
                       expected: Sequence[str]) -> list[str]:
    available = base_tables(conn, build_schema)
    if not available:
        raise PublishError(f"build schema {build_schema!r} has no tables (did the dbt build "
                           "run?); nothing was published")
    if not expected:
        raise PublishError("no tables given to publish; nothing was published")
    missing = sorted(set(expected) - set(available))
    if missing:
        raise PublishError(f"table(s) {', '.join(missing)} not found in build schema "
                           f"{build_schema!r}; nothing was published")
    chosen = sorted(set(expected))
    reserved = sorted(set(chosen) & set(PUBLISH_OWNED))
    if reserved:
        raise PublishError(f"{build_schema}.{reserved[0]}: that name is reserved for the "
                           "published KPI history; nothing was published")
    return chosen


def _check_rebuilt(conn: psycopg.Connection, build_schema: str) -> None:
    """Refuse a build schema that still holds a generation swapped out by a publish."""
    found = _schema(conn, build_schema)
    comment = found[1] if found else None
    if comment and comment.startswith(SWAPPED_OUT_MARK):
        raise PublishError(
            f"build schema {build_schema!r} has not been rebuilt since the last publish "
            f"({comment}): run the dbt build first (the DAG from dbt_base, or "
            "pipeline.transform); nothing was published")


def ensure_build_schema(warehouse_url: str, build_schema: str) -> None:
    """Prepare the build schema for a dbt build: create it when missing, keep what it holds
    (dbt replaces each mart in place) and clear the mark of
    the publish that swapped it out, so that the new build can be published."""
    with connect(warehouse_url, connect_timeout=10) as conn:
        found = _schema(conn, build_schema)
        if found is None:
            # Only when missing: `create schema if not exists` needs CREATE on the database
            # even when the schema exists.
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(build_schema)))
        elif found[1] and found[1].startswith(SWAPPED_OUT_MARK):
            conn.execute(sql.SQL("comment on schema {} is null").format(
                sql.Identifier(build_schema)))


def _ensure_meta(tx: _Transaction) -> None:
    # Only when missing: `create schema if not exists` needs CREATE on the database even
    # when the schema exists.
    found = tx.run(f"look up schema {META_SCHEMA}", "select 1 from pg_namespace where "
                   "nspname = %s", (META_SCHEMA,)).fetchone()
    if found is None:
        tx.run(f"create schema {META_SCHEMA}",
               sql.SQL("create schema {}").format(sql.Identifier(META_SCHEMA)))
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


def _drop_leftovers(tx: _Transaction, build_schema: str, marts: Sequence[str]) -> list[str]:
    """Drop every relation of the build schema that is not an expected mart."""
    leftovers = [(name, kind) for name, kind in _relations(tx.conn, build_schema)
                 if name not in marts]
    for keyword in _DROP_ORDER:
        names = [name for name, kind in leftovers if _DROP_KEYWORDS[kind] == keyword]
        if not names:
            continue
        for name in names:
            log.warning("dropping %s %s.%s: not a mart of this build, so it must not be "
                        "published", keyword, build_schema, name)
        # One statement per kind: dependencies among the dropped relations are fine, no
        # cascade to anything else.
        tx.run(f"drop the leftover {keyword}(s) {', '.join(names)} from {build_schema}",
               sql.SQL("drop {} {}").format(sql.SQL(keyword), sql.SQL(", ").join(
                   _ident(build_schema, n) for n in names)))
    return sorted(name for name, _ in leftovers)


def _row_counts(tx: _Transaction, schema: str, tables: Sequence[str]) -> dict[str, int]:
    return {t: int(one_row(tx.run(f"count the rows of {schema}.{t}",
                                  sql.SQL("select count(*) from {}").format(_ident(schema, t))))[0])
            for t in tables}


def _record_kpi_history(tx: _Transaction, build_schema: str, history_schema: str,
                        publish_schema: str, run_id: str, as_of_date: date) -> int:
    """Replace the as-of date's rows of kpi_history (in `history_schema`, the schema that
    becomes the published one) with the KPIs being published."""
    columns = _columns(tx.conn, build_schema, KPI_TABLE)
    clash = sorted({name for name, _ in columns} & set(HISTORY_COLUMNS))
    if clash:
        raise PublishError(f"{build_schema}.{KPI_TABLE} has column(s) {', '.join(clash)} that "
                           f"{HISTORY_TABLE} adds itself; nothing was published")
    history = _ident(history_schema, HISTORY_TABLE)
    what = f"update {publish_schema}.{HISTORY_TABLE}"
    defs = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns]
    tx.run(what, sql.SQL(
        "create table if not exists {} ({}, run_id text not null, as_of_date date not null, "
        "published_at timestamptz not null)").format(history, sql.SQL(", ").join(defs)))
    # A KPI column added to the mart later is added to the history (older rows get null).
    present = {name for name, _ in _columns(tx.conn, history_schema, HISTORY_TABLE)}
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


def _unused_schema_name(tx: _Transaction, stem: str) -> str:
    """`<stem>__swap` (or `<stem>__swap<n>`), cut to PostgreSQL's 63 bytes, not in use."""
    for n in range(100):
        suffix = "__swap" + (str(n) if n else "")
        name = stem.encode()[:63 - len(suffix)].decode(errors="ignore") + suffix
        if tx.run(f"look up schema {name}", "select 1 from pg_namespace where nspname = %s",
                  (name,)).fetchone() is None:
            return name
    raise PublishError(f"no free temporary schema name for {stem!r}; nothing was published")


def _rename_schema(tx: _Transaction, old: str, new: str) -> None:
    tx.run(f"rename schema {old} to {new}", sql.SQL("alter schema {} rename to {}").format(
        sql.Identifier(old), sql.Identifier(new)))


def _swap(tx: _Transaction, build_schema: str, publish_schema: str) -> None:
    """Exchange the names of the two schemas and move publish's own tables back."""
    owned = sorted(set(PUBLISH_OWNED) & set(base_tables(tx.conn, publish_schema)))
    tmp = _unused_schema_name(tx, publish_schema)
    _rename_schema(tx, publish_schema, tmp)
    _rename_schema(tx, build_schema, publish_schema)
    _rename_schema(tx, tmp, build_schema)
    for table in owned:
        tx.run(f"move {table} back into {publish_schema}", sql.SQL(
            "alter table {} set schema {}").format(
                _ident(build_schema, table), sql.Identifier(publish_schema)))


def _first_publish(tx: _Transaction, build_schema: str, publish_schema: str,
                   owner: str) -> None:
    _rename_schema(tx, build_schema, publish_schema)
    tx.run(f"create schema {build_schema}", sql.SQL("create schema {} authorization {}").format(
        sql.Identifier(build_schema), sql.Identifier(owner)))


def _swapped_out_mark(run_id: str, as_of_date: date) -> str:
    """The comment of a build schema swapped out by the publish of `run_id`."""
    return f"{SWAPPED_OUT_MARK}, swapped out by run {run_id} (as-of {as_of_date})"


def _mark_swapped_out(tx: _Transaction, build_schema: str, run_id: str,
                      as_of_date: date) -> None:
    mark = _swapped_out_mark(run_id, as_of_date)
    tx.run(f"mark schema {build_schema}", sql.SQL("comment on schema {} is {}").format(
        sql.Identifier(build_schema), sql.Literal(mark)))


def _grant_reporter(tx: _Transaction, publish_schema: str, build_schema: str) -> None:
    """The reporter reads the published schema and nothing of the build schema. Schema and
    table privileges, and the default privileges of a schema, followed the renamed schema
    objects, so they are set again for the schemas' new roles."""
    if not _role_exists(tx.conn, REPORTER_ROLE):
        return
    pub, build = sql.Identifier(publish_schema), sql.Identifier(build_schema)
    reporter = sql.Identifier(REPORTER_ROLE)
    grants = [
        (f"grant usage on schema {publish_schema} to {REPORTER_ROLE}",
         sql.SQL("grant usage on schema {} to {}").format(pub, reporter)),
        (f"grant select on the tables of {publish_schema} to {REPORTER_ROLE}",
         sql.SQL("grant select on all tables in schema {} to {}").format(pub, reporter)),
        (f"revoke {REPORTER_ROLE}'s privileges on schema {build_schema}",
         sql.SQL("revoke all on schema {} from {}").format(build, reporter)),
        (f"revoke {REPORTER_ROLE}'s privileges on the tables of {build_schema}",
         sql.SQL("revoke all on all tables in schema {} from {}").format(build, reporter)),
    ]
    for what, statement in grants:
        tx.run(what, statement)
    # Default privileges of either schema that give the reporter something on tables made
    # later: keep them on the published schema only.
    rows = tx.run(f"read the default privileges of {REPORTER_ROLE}", (
        "select pg_get_userbyid(d.defaclrole), a.privilege_type "
        "from pg_default_acl d cross join lateral aclexplode(d.defaclacl) a "
        "join pg_roles r on r.oid = a.grantee "
        "where d.defaclobjtype = 'r' and r.rolname = %s and d.defaclnamespace in "
        "(select oid from pg_namespace where nspname in (%s, %s)) "
        "group by 1, 2 order by 1, 2"), (REPORTER_ROLE, publish_schema, build_schema)).fetchall()
    creators: dict[str, list[str]] = {}
    for creator, privilege in rows:
        creators.setdefault(creator, []).append(privilege)
    for creator, privileges in creators.items():
        privs = sql.SQL(", ").join(sql.SQL(p) for p in privileges)
        for verb, schema, prep in (("grant", pub, "to"), ("revoke", build, "from")):
            tx.run(f"move the default privileges of {creator} for {REPORTER_ROLE} to "
                   f"{publish_schema}", sql.SQL(
                       "alter default privileges for role {} in schema {} {} {} on tables "
                       "{} {}").format(sql.Identifier(creator), schema, sql.SQL(verb), privs,
                                       sql.SQL(prep), reporter))


def _log_publish(tx: _Transaction, run_id: str, as_of_date: date, build_schema: str,
                 publish_schema: str, counts: dict[str, int]) -> datetime:
    row = one_row(tx.run(f"write {META_SCHEMA}.{PUBLISH_LOG_TABLE}", sql.SQL(
        "insert into {} (run_id, as_of_date, published_at, build_schema, publish_schema, "
        "tables, row_counts) values (%s, %s, now(), %s, %s, %s, %s) returning published_at"
    ).format(_ident(META_SCHEMA, PUBLISH_LOG_TABLE)), (
        run_id, as_of_date, build_schema, publish_schema, list(counts), Jsonb(counts),
    )))
    return row[0]


def publish(warehouse_url: str, *, build_schema: str, publish_schema: str, run_id: str,
            as_of_date: date, tables: Sequence[str] | None = None,
            lock_timeout: str = "10s") -> PublishResult:
    """Swap the validated build schema with the published schema in one transaction (see
    the module doc).

    `tables` are the marts the build must hold and the published schema will hold (with
    kpi_history); by default the models dbt builds into the build schema (`dbt_marts`).
    Raises PublishError (after a rollback: nothing changed) when the build is empty, an
    expected mart is missing, the build schema was not rebuilt since the last publish, a
    lock is not granted within `lock_timeout`, or any statement fails.
    """
    if build_schema == publish_schema:
        raise PublishError(f"build and published schema are both {build_schema!r}")
    started = time.monotonic()
    expected = _expected_marts(tables)
    try:
        with (connect(warehouse_url, autocommit=True, connect_timeout=10) as conn,
              conn.transaction()):
            result = _publish(_Transaction(conn, lock_timeout), build_schema,
                              publish_schema, run_id, as_of_date, expected)
    except psycopg.Error as exc:  # connecting or committing
        raise PublishError(f"publish {build_schema} -> {publish_schema} failed: "
                           f"{_first_line(exc)}") from exc
    done = PublishResult(**result, seconds=time.monotonic() - started)
    log.info("%s", done.summary())
    return done


def _publish(tx: _Transaction, build_schema: str, publish_schema: str, run_id: str,
             as_of_date: date, expected: Sequence[str]) -> dict[str, Any]:
    tx.run(f"set lock_timeout to {tx.lock_timeout!r}",
           "select set_config('lock_timeout', %s, true)", (tx.lock_timeout,))
    chosen = _tables_to_publish(tx.conn, build_schema, expected)
    _check_rebuilt(tx.conn, build_schema)
    _ensure_meta(tx)
    # Work that does not touch the published schema comes first, so the locks that block
    # readers are held only for the swap itself.
    _lock(tx, build_schema, chosen)
    dropped = _drop_leftovers(tx, build_schema, chosen)
    counts = _row_counts(tx, build_schema, chosen)
    published = _schema(tx.conn, publish_schema)
    # kpi_history lives in the published schema, or on the first publish in the build
    # schema that is about to become the published one.
    history_schema = publish_schema if published else build_schema
    history_rows = None
    if KPI_TABLE in chosen:
        history_rows = _record_kpi_history(tx, build_schema, history_schema, publish_schema,
                                           run_id, as_of_date)
    published_at = _log_publish(tx, run_id, as_of_date, build_schema, publish_schema, counts)
    if published is None:
        build = _schema(tx.conn, build_schema)
        assert build is not None, "checked before the publish began"
        _first_publish(tx, build_schema, publish_schema, owner=build[0])
    else:
        relations = _relations(tx.conn, publish_schema)
        for name, _ in relations:
            if name not in chosen and name not in PUBLISH_OWNED:
                log.warning("%s.%s is not a mart of this build: it leaves the published "
                            "schema with the previous generation", publish_schema, name)
        _lock(tx, publish_schema, [n for n, kind in relations if kind in ("r", "p")])
        _swap(tx, build_schema, publish_schema)
    _mark_swapped_out(tx, build_schema, run_id, as_of_date)
    _grant_reporter(tx, publish_schema, build_schema)
    return {"run_id": run_id, "as_of_date": as_of_date, "build_schema": build_schema,
            "publish_schema": publish_schema, "tables": tuple(chosen), "row_counts": counts,
            "history_rows": history_rows, "published_at": published_at,
            "dropped": tuple(dropped)}


@dataclass(frozen=True)
class _Published:
    """A row of dw_meta.publish_log: one publish."""

    id: int
    run_id: str
    as_of_date: date
    tables: tuple[str, ...]


def restore_previous(warehouse_url: str, *, build_schema: str, publish_schema: str,
                     lock_timeout: str = "10s") -> PublishResult:
    """Undo the last publish: publish again the generation it replaced, which the build
    schema holds until the next dbt build (see "Restore" in the module doc).

    Raises PublishError (after a rollback: nothing changed) when the build schema no longer
    holds that generation (a dbt build has run since the publish, or its mark does not
    name the last publish), when there was no earlier publish, when a table of the
    restored generation is missing, or when a lock is not granted within `lock_timeout`.
    """
    if build_schema == publish_schema:
        raise PublishError(f"build and published schema are both {build_schema!r}")
    started = time.monotonic()
    try:
        with (connect(warehouse_url, autocommit=True, connect_timeout=10) as conn,
              conn.transaction()):
            result = _restore(_Transaction(conn, lock_timeout), build_schema, publish_schema)
    except psycopg.Error as exc:  # connecting or committing
        raise PublishError(f"restore {build_schema} -> {publish_schema} failed: "
                           f"{_first_line(exc)}") from exc
    done = PublishResult(**result, seconds=time.monotonic() - started)
    log.info("restored the previous generation: %s", done.summary())
    return done


def _last_publishes(tx: _Transaction, publish_schema: str) -> list[_Published]:
    """The last two publishes to `publish_schema`, newest first."""
    table = f"{META_SCHEMA}.{PUBLISH_LOG_TABLE}"
    if one_row(tx.run(f"look up {table}", "select to_regclass(%s)", (table,)))[0] is None:
        return []
    rows = tx.run(f"read {table}", sql.SQL(
        "select id, run_id, as_of_date, tables from {} where publish_schema = %s "
        "order by id desc limit 2").format(_ident(META_SCHEMA, PUBLISH_LOG_TABLE)),
        (publish_schema,)).fetchall()
    return [_Published(id_, run_id, as_of_date, tuple(tables))
            for id_, run_id, as_of_date, tables in rows]


def _undo_history(tx: _Transaction, publish_schema: str, undone: _Published,
                  restored: _Published) -> None:
    """kpi_history as it was before `undone` was published, as far as it can be: its rows
    go, unless an earlier publish of the same run wrote the same as-of date (undoing a
    restore); the restored run's as-of date is then written again from its marts."""
    history = _ident(publish_schema, HISTORY_TABLE)
    before = tx.run(f"read {META_SCHEMA}.{PUBLISH_LOG_TABLE}", sql.SQL(
        "select run_id from {} where publish_schema = %s and as_of_date = %s and id < %s "
        "order by id desc limit 1").format(_ident(META_SCHEMA, PUBLISH_LOG_TABLE)),
        (publish_schema, undone.as_of_date, undone.id)).fetchone()
    if before is not None and before[0] == undone.run_id:
        return
    tx.run(f"remove run {undone.run_id} from {publish_schema}.{HISTORY_TABLE}", sql.SQL(
        "delete from {} where run_id = %s and as_of_date = %s").format(history),
        (undone.run_id, undone.as_of_date))
    if before is not None and undone.as_of_date != restored.as_of_date:
        log.warning("%s.%s has no KPIs for as-of %s any more: run %s replaced those of run "
                    "%s, which cannot be restored; rerun that day to record them",
                    publish_schema, HISTORY_TABLE, undone.as_of_date, undone.run_id, before[0])


def _restore(tx: _Transaction, build_schema: str, publish_schema: str) -> dict[str, Any]:
    tx.run(f"set lock_timeout to {tx.lock_timeout!r}",
           "select set_config('lock_timeout', %s, true)", (tx.lock_timeout,))
    found = _schema(tx.conn, build_schema)
    comment = found[1] if found else None
    if not comment or not comment.startswith(SWAPPED_OUT_MARK):
        raise PublishError(
            f"build schema {build_schema!r} does not hold the previous published generation: "
            "a dbt build has run since the last publish (or nothing was published yet); "
            "rerun the night you want published instead; nothing was changed")
    last = _last_publishes(tx, publish_schema)
    if not last or comment != _swapped_out_mark(last[0].run_id, last[0].as_of_date):
        newest = f"run {last[0].run_id} (as-of {last[0].as_of_date})" if last else "nothing"
        raise PublishError(
            f"build schema {build_schema!r} is marked {comment!r}, but the last publish to "
            f"{publish_schema!r} in {META_SCHEMA}.{PUBLISH_LOG_TABLE} is {newest}; "
            "nothing was changed")
    if len(last) < 2:
        raise PublishError(f"run {last[0].run_id} was the first publish to {publish_schema!r}: "
                           "there is no earlier generation to restore; nothing was changed")
    undone, restored = last
    available = set(base_tables(tx.conn, build_schema))
    missing = sorted(set(restored.tables) - available)
    if missing:
        raise PublishError(f"table(s) {', '.join(missing)} of run {restored.run_id} are not in "
                           f"build schema {build_schema!r}; nothing was changed")
    tables = sorted(restored.tables)
    _lock(tx, build_schema, tables)
    counts = _row_counts(tx, build_schema, tables)
    history_rows = None
    if HISTORY_TABLE in base_tables(tx.conn, publish_schema):
        _undo_history(tx, publish_schema, undone, restored)
        if KPI_TABLE in tables:
            history_rows = _record_kpi_history(tx, build_schema, publish_schema, publish_schema,
                                               restored.run_id, restored.as_of_date)
    published_at = _log_publish(tx, restored.run_id, restored.as_of_date, build_schema,
                                publish_schema, counts)
    _lock(tx, publish_schema, [n for n, kind in _relations(tx.conn, publish_schema)
                               if kind in ("r", "p")])
    _swap(tx, build_schema, publish_schema)
    tx.run(f"clear the mark of schema {publish_schema}", sql.SQL(
        "comment on schema {} is null").format(sql.Identifier(publish_schema)))
    _mark_swapped_out(tx, build_schema, restored.run_id, restored.as_of_date)
    _grant_reporter(tx, publish_schema, build_schema)
    log.warning("restored run %s (as-of %s) to %s; run %s (as-of %s) is in %s and will be "
                "replaced by the next build", restored.run_id, restored.as_of_date,
                publish_schema, undone.run_id, undone.as_of_date, build_schema)
    return {"run_id": restored.run_id, "as_of_date": restored.as_of_date,
            "build_schema": build_schema, "publish_schema": publish_schema,
            "tables": tuple(tables), "row_counts": counts, "history_rows": history_rows,
            "published_at": published_at, "dropped": ()}


def published_checksums(warehouse_url: str, schema: str) -> dict[str, tuple[int, str]]:
    """Row count and order-independent md5 of every table of `schema` (run metadata
    columns excluded), to compare the published schema before and after a run."""
    with connect(warehouse_url) as conn:
        return {t: table_checksum(conn, f"{schema}.{t}", exclude=RUN_METADATA_COLUMNS)
                for t in base_tables(conn, schema)}
