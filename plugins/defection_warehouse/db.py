"""Small PostgreSQL helpers shared by the loader, the sample, the commands and the tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from defection_warehouse.sources.contracts import LOAD_COLUMNS, Entity

if TYPE_CHECKING:
    from defection_warehouse.config import Settings


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def redact(url: str) -> str:
    """The URL with its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def warehouse_url(settings: Settings, progress: Callable[[str], None] = print) -> str:
    """The warehouse the commands work on: WAREHOUSE_URL (its database is created when the
    server lacks it), else the embedded PostgreSQL, started if need be. Exits with a
    message naming the URL (password hidden) when the server cannot be reached."""
    if settings.warehouse_url:
        from defection_warehouse.embedded import ensure_database

        url = settings.warehouse_url
        try:
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.OperationalError as exc:
            if "does not exist" not in str(exc):
                raise SystemExit(f"cannot connect to WAREHOUSE_URL {redact(url)}: {exc}") from exc
            database = urlsplit(url).path.lstrip("/")
            progress(f"creating database {database} on the WAREHOUSE_URL server")
            ensure_database(with_database(url, "postgres"), database)
        return url
    from defection_warehouse import embedded

    url = embedded.start(settings)
    progress(f"WAREHOUSE_URL is not set: using the embedded PostgreSQL at {url} "
             f"(data in {settings.data_dir / 'pgdata'})")
    return url


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(url, application_name="defection_warehouse", **kwargs)


def one_row(cursor: psycopg.Cursor) -> tuple[Any, ...]:
    """The row of a query that always returns exactly one (an aggregate, a function)."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row


def qualified(table: str) -> sql.Composed:
    """`schema.table` from configuration, quoted as identifiers (never formatted in)."""
    parts = table.split(".")
    if len(parts) != 2:
        raise ValueError(f"expected schema.table, got {table!r}")
    return sql.SQL(".").join(sql.Identifier(p) for p in parts)


def loaded_at_index_name(entity: Entity) -> str:
    """Name of the raw table's BRIN index on _loaded_at (in the raw table's schema)."""
    return f"{entity.name}__loaded_at"


def raw_table_ddl(entity: Entity) -> list[sql.Composed]:
    """DDL for a raw table: contract columns (nullable: raw keeps what the source sent;
    the quality gate judges it) plus load stamps filled from transaction settings."""
    table = qualified(entity.raw_table)
    cols = [
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in entity.columns
    ]
    defaults = {
        "_batch_id": "current_setting('dw.batch_id')",
        "_logical_date": "current_setting('dw.logical_date')::date",
        "_source_file": "current_setting('dw.source_file')",
        "_loaded_at": "now()",
    }
    for name, type_, _ in LOAD_COLUMNS:
        cols.append(
            sql.SQL("{} {} not null default {}").format(
                sql.Identifier(name), sql.SQL(type_), sql.SQL(defaults[name])
            )
        )
    index = sql.Identifier(f"{entity.name}__logical_date")
    # Rows are appended in load order, so a BRIN index on the load stamp is tiny and lets
    # the incremental staging models read only the rows loaded since their last build
    # (once the loader has summarized the new pages: see summarize_loaded_at_index).
    loaded_index = sql.Identifier(loaded_at_index_name(entity))
    return [
        sql.SQL("create table if not exists {} ({})").format(table, sql.SQL(", ").join(cols)),
        sql.SQL("create index if not exists {} on {} (_logical_date)").format(index, table),
        sql.SQL("create index if not exists {} on {} using brin (_loaded_at)").format(
            loaded_index, table),
    ]


def evolve_raw_table(conn: psycopg.Connection, entity: Entity) -> list[str]:
    """Bring an existing raw table up to the contract: add the contract columns it lacks
    and widen to text the id columns the contract now types as text (numbers become their
    digits, nothing is lost). Any other type change is refused with a message naming the
    column. Returns what was changed."""
    schema, name = entity.raw_table.split(".")
    current: dict[str, str] = dict(conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
        "where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped",
        (sql.Identifier(schema, name).as_string(conn),)).fetchall())
    table = qualified(entity.raw_table)
    changed = []
    for c in entity.columns:
        have = current.get(c.name)
        if have is None:
            conn.execute(sql.SQL("alter table {} add column {} {}").format(
                table, sql.Identifier(c.name), sql.SQL(c.type)))
            changed.append(f"{entity.raw_table}.{c.name}: added ({c.type})")
        elif have != c.type and have.replace("timestamp with time zone",
                                             "timestamptz") != c.type:
            if c.type != "text":
                raise RuntimeError(
                    f"{entity.raw_table}.{c.name} is {have} but the contract says {c.type}: "
                    "only a change to text is applied automatically")
            conn.execute(sql.SQL("alter table {} alter column {} type text using {}::text")
                         .format(table, sql.Identifier(c.name), sql.Identifier(c.name)))
            changed.append(f"{entity.raw_table}.{c.name}: {have} -> text")
    return changed


def summarize_loaded_at_index(conn: psycopg.Connection, entity: Entity) -> int:
    """Summarize the pages a load appended to the raw table's BRIN index on _loaded_at;
    returns the page ranges summarized. PostgreSQL summarizes new BRIN ranges only when
    the table is vacuumed, and a table that grows by a small share a night is seldom
    vacuumed: until then every unsummarized range matches any condition, and a search for
    the night's rows reads the whole table."""
    schema = entity.raw_table.split(".")[0]
    index = sql.Identifier(schema, loaded_at_index_name(entity))
    return one_row(conn.execute(
        sql.SQL("select brin_summarize_new_values({}::regclass)").format(
            sql.Literal(index.as_string(conn)))))[0]


def table_checksum(conn: psycopg.Connection, table: str,
                   exclude: Iterable[str] = ("_loaded_at",)) -> tuple[int, str]:
    """Row count and an order-independent md5 of a table's rows, minus `exclude` columns."""
    schema, name = table.split(".")
    cols = [
        r[0]
        for r in conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            (schema, name),
        )
        if r[0] not in set(exclude)
    ]
    if not cols:
        raise ValueError(f"table {table} not found or has no columns")
    row_expr = sql.SQL("md5(row({})::text)").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    )
    query = sql.SQL(
        "select count(*), coalesce(md5(string_agg(h, '' order by h)), '') "
        "from (select {} as h from {}) t"
    ).format(row_expr, qualified(table))
    count, digest = one_row(conn.execute(query))
    return int(count), str(digest)
