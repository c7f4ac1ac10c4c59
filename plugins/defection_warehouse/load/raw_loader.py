"""Raw loader: landing batch -> raw_<source> tables with PostgreSQL COPY.

One source batch (source + logical date) is replaced in one transaction: the previous rows
of that date are deleted and every landing file is streamed in with COPY, so readers see
either the old batch or the new one, never a part. Files stream in fixed-size chunks, so
memory does not grow with file size.

A clean file takes the fast path: its bytes go straight to COPY. When PostgreSQL rejects a
file, the loader rolls back to a savepoint and re-reads that file in Python, row by row
validated against the contract: good rows still go in with COPY, malformed ones go to
``raw_meta.quarantine`` with file, line, field and reason. Files delivered as they are
(survey exports) with timestamp columns always take the row-by-row path, because COPY would
read a timestamp without a UTC offset as UTC where the contract asks for an offset.

Both paths read a CSV file the way PostgreSQL's COPY does: a UTF-8 byte-order mark is
skipped, an unquoted empty field is NULL and a quoted empty field ("") is an empty string.

A file fails when more than QUARANTINE_MAX_SHARE of its rows and more than
QUARANTINE_MIN_ROWS rows are malformed, or when every one of its rows is; then nothing of
the batch is loaded, the quarantine is still recorded and the load fails. Every failed load,
whatever the cause, leaves ``raw_meta.load_audit`` rows with status ``failed`` and a message
that names the file (and the line, where there is one).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from itertools import islice
from typing import IO, Any

import psycopg
from psycopg import sql
from psycopg.copy import LibpqWriter

from defection_warehouse.db import (
    connect,
    evolve_raw_table,
    one_row,
    qualified,
    raw_table_ddl,
    summarize_loaded_at_index,
)
from defection_warehouse.sources.contracts import Entity, PgType, entities_for
from defection_warehouse.sources.csv_records import records
from defection_warehouse.sources.landing import (
    CHUNK,
    MANIFEST,
    LandedFile,
    LandingBatch,
    LandingError,
    LandingZone,
)

log = logging.getLogger(__name__)

META_DDL = """
create table if not exists raw_meta.load_audit (
    load_id          uuid        not null,
    batch_id         text        not null,
    source           text        not null,
    entity           text        not null,
    logical_date     date        not null,
    source_file      text        not null,
    rows_in          bigint      not null,
    rows_loaded      bigint      not null,
    rows_quarantined bigint      not null,
    rows_replaced    bigint      not null,
    path             text        not null,
    started_at       timestamptz not null,
    finished_at      timestamptz not null,
    duration_seconds double precision not null,
    status           text        not null,
    message          text,
    -- the load transaction's time: the _loaded_at stamp of the rows it loaded
    loaded_at        timestamptz not null default now()
);
alter table raw_meta.load_audit add column if not exists
    loaded_at timestamptz not null default now();
create table if not exists raw_meta.quarantine (
    load_id        uuid        not null,
    batch_id       text        not null,
    source         text        not null,
    entity         text        not null,
    logical_date   date        not null,
    source_file    text        not null,
    line_number    bigint      not null,
    field          text,
    reason         text        not null,
    raw_record     text,
    quarantined_at timestamptz not null default now()
);
create index if not exists quarantine__batch on raw_meta.quarantine (batch_id);
"""

QUARANTINE_COLUMNS = ("load_id", "batch_id", "source", "entity", "logical_date",
                      "source_file", "line_number", "field", "reason", "raw_record")


class LoadError(RuntimeError):
    """The batch could not be loaded; the message says which file, row and field."""


class QuarantineThresholdExceeded(LoadError):
    pass


@dataclass
class FileResult:
    entity: str
    file: str
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    path: str  # "copy" (fast) or "validated" (row checks after PostgreSQL refused the file)
    seconds: float
    warnings: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    load_id: str
    batch_id: str
    source: str
    logical_date: date
    files: list[FileResult]
    rows_replaced: int
    seconds: float

    @property
    def rows_in(self) -> int:
        return sum(f.rows_in for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def summary(self) -> str:
        return (f"{self.batch_id}: {self.rows_loaded} rows loaded, "
                f"{self.rows_quarantined} quarantined, {len(self.files)} files, "
                f"{self.seconds:.1f}s")


# -- value checks used on the validated path --------------------------------------------
_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
                    r"(?P<offset>Z|[+-]\d{2}(:?\d{2})?)?$")
_BOOLS = {"t", "true", "y", "yes", "on", "1", "f", "false", "n", "no", "off", "0"}
_LIMITS = {"integer": 2**31, "bigint": 2**63}
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that surrogateescape could not decode


def check_value(type_: PgType, value: str) -> str | None:
    """None when PostgreSQL would accept `value` for `type_`, else the reason."""
    if "\x00" in value:
        return "contains a NUL character"
    if bad := _NOT_UTF8.search(value):
        offset = len(value[:bad.start()].encode("utf-8", "surrogateescape"))
        return (f"encoding error: byte 0x{ord(bad.group()) - 0xDC00:02x} at byte {offset} "
                f"of the value is not valid UTF-8")
    if type_ == "text":
        return None
    if type_ in ("integer", "bigint"):
        if not _INT_RE.match(value):
            return f"{value!r} is not a whole number"
        if not -_LIMITS[type_] <= int(value) < _LIMITS[type_]:
            return f"{value!r} is out of range for {type_}"
        return None
    if type_ == "boolean":
        return None if value.strip().lower() in _BOOLS else f"{value!r} is not a boolean"
    if type_ == "date":
        try:
            if not _DATE_RE.match(value):
                raise ValueError
            date.fromisoformat(value)
        except ValueError:
            return f"{value!r} is not a YYYY-MM-DD date"
        return None
    if type_ == "timestamptz":
        try:
            stamp = _TS_RE.match(value)
            if not stamp:
                raise ValueError
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"{value!r} is not an ISO 8601 timestamp"
        if stamp["offset"] is None:
            return f"{value!r} has no UTC offset (the contract needs one, e.g. Z or +02:00)"
        return None
    raise ValueError(f"no check for type {type_}")


# -- reading landing files ----------------------------------------------------------------
class _HashingReader(io.RawIOBase):
    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._f.read(len(b))
        n = len(data)
        b[:n] = data
        self.sha.update(data)
        self.size += n
        return n


def _read_header(batch: LandingBatch, landed: LandedFile) -> list[str]:
    where = batch.file_url(landed.file)
    with batch.open_file(landed.file) as f:
        first = f.readline(1 << 16)
    if not first:
        raise LoadError(f"{where}: the file is empty (0 bytes): no header line")
    bom = len(codecs.BOM_UTF8) if first.startswith(codecs.BOM_UTF8) else 0
    try:
        text = first[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"{where}: line 1 (header): encoding error: byte 0x{first[bom + exc.start]:02x} "
            f"at byte offset {bom + exc.start} of the file is not valid UTF-8 (save the "
            f"export as UTF-8)") from None
    header = next(csv.reader([text]), [])
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise LoadError(f"{where}: line 1 (header) names column(s) more than once: "
                        f"{', '.join(repeated)}")
    return header


def _check_integrity(landed: LandedFile, sha: str, size: int) -> None:
    if sha != landed.sha256 or size != landed.bytes:
        raise LandingError(
            f"{landed.file}: content does not match the manifest "
            f"({size} bytes, sha256 {sha[:12]}; manifest {landed.bytes} bytes, "
            f"sha256 {landed.sha256[:12]}): the landing file changed after extract"
        )



def _quarantine_row(quarantine: Any, context: tuple[Any, ...], line: int, field: str | None,
                    why: str, record: str) -> None:
    """One malformed row, with its load context, for raw_meta.quarantine."""
    quarantine.writerow([*context, line, field, why, record])

class RawLoader:
    def __init__(
        self,
        warehouse_url: str,
        zone: LandingZone,
        *,
        max_quarantine_share: float = 0.01,
        min_quarantine_rows: int = 5,
        lock_timeout: str = "60s",
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.url = warehouse_url
        self.zone = zone
        self.max_share = max_quarantine_share
        self.min_rows = min_quarantine_rows
        self.lock_timeout = lock_timeout
        self.progress = progress or log.info

    def ensure_tables(self, conn: psycopg.Connection, source: str) -> None:
        with conn.transaction():
            # Serialise DDL between concurrent first loads.
            conn.execute("select pg_advisory_xact_lock(hashtext('defection_warehouse:ddl'))")
            # Only create a missing schema: `create schema if not exists` needs CREATE on
            # the database even when the schema exists, which the loader role lacks.
            for schema in ("raw_meta", f"raw_{source}"):
                if one_row(conn.execute("select to_regnamespace(%s)", (schema,)))[0] is None:
                    conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
            conn.execute(META_DDL)
            for entity in entities_for(source):
                for stmt in raw_table_ddl(entity):
                    conn.execute(stmt)
                for change in evolve_raw_table(conn, entity):
                    self.progress(f"raw table changed to match the contract: {change}")

    def ensure_source_tables(self, source: str) -> None:
        """Create the source's raw schema and tables if missing (a source not connected
        still gets empty tables, so every model reading them builds)."""
        with connect(self.url, autocommit=True) as conn:
            self.ensure_tables(conn, source)

    def load(self, source: str, logical_date: date) -> LoadResult:
        batch = self.zone.batch(source, logical_date)
        entities = {e.name: e for e in entities_for(source)}
        load_id = str(uuid.uuid4())
        batch_id = f"{source}:{logical_date.isoformat()}"
        started = time.monotonic()
        started_at = datetime.now().astimezone()
        results: list[FileResult] = []
        # Quarantined rows spool to disk, so a badly broken file cannot exhaust memory.
        # Autocommit: each `conn.transaction()` below is a real transaction, not a savepoint.
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", newline="") as spool, \
                connect(self.url, autocommit=True) as conn:
            quarantine = csv.writer(spool, lineterminator="\n")
            conn.execute("set time zone 'UTC'")
            self.ensure_tables(conn, source)
            try:
                manifest = self._manifest(batch, entities, results)
                with conn.transaction():
                    conn.execute(sql.SQL("set local lock_timeout = {}").format(
                        sql.Literal(self.lock_timeout)))
                    conn.execute("select pg_advisory_xact_lock(hashtext(%s))",
                                 (f"defection_warehouse:load:{source}",))
                    for key, value in (("dw.batch_id", batch_id),
                                       ("dw.logical_date", logical_date.isoformat())):
                        conn.execute("select set_config(%s, %s, true)", (key, value))
                    replaced = 0
                    for entity in entities.values():
                        cur = conn.execute(
                            sql.SQL("delete from {} where _logical_date = %s").format(
                                qualified(entity.raw_table)),
                            (logical_date,),
                        )
                        replaced += cur.rowcount
                    for landed in manifest.files:
                        ctx = (load_id, batch_id, source, landed.entity, logical_date,
                               batch.file_url(landed.file))
                        try:
                            res = self._load_file(
                                conn, batch, entities[landed.entity], landed,
                                partial(_quarantine_row, quarantine, ctx))
                        except Exception:
                            # audited with the rows the extract counted in the file
                            results.append(FileResult(landed.entity, landed.file,
                                                      landed.rows, 0, 0, "failed", 0.0))
                            raise
                        results.append(res)
                    self._report(source, results)
                    failing = [r for r in results if self._file_fails(r)]
                    if failing:
                        raise QuarantineThresholdExceeded(self._quarantine_message(
                            batch_id, failing, spool))
                    self._write_meta(conn, spool, batch_id, load_id, source, logical_date,
                                     results, replaced, started_at, "loaded", None)
            except Exception as exc:
                # The data rolled back; keep the evidence of why, whatever went wrong.
                error = exc if isinstance(exc, LoadError | LandingError) else LoadError(
                    f"{batch_id}: {_where(batch, results)}{type(exc).__name__}: {exc}")
                if not isinstance(exc, QuarantineThresholdExceeded):
                    spool.seek(0)
                    spool.truncate(0)
                if not results:  # failed before any file: audit the batch itself
                    results.append(FileResult("-", MANIFEST, 0, 0, 0, "failed", 0.0))
                self._audit_failure(conn, spool, batch_id, load_id, source, logical_date,
                                    results, started_at, str(error))
                if error is exc:
                    raise
                raise error from exc
            for entity in entities.values():
                summarize_loaded_at_index(conn, entity)
        result = LoadResult(load_id, batch_id, source, logical_date, results, replaced,
                            time.monotonic() - started)
        self.progress(result.summary())
        return result

    def _manifest(self, batch: LandingBatch, entities: dict[str, Entity],
                  results: list[FileResult]) -> Any:
        manifest = batch.manifest()
        unknown = sorted({f.entity for f in manifest.files if f.entity not in entities})
        if unknown:
            raise LoadError(f"{batch.url}: manifest names entities outside the "
                            f"{batch.source} contract: {', '.join(unknown)}")
        return manifest

    def _file_fails(self, result: FileResult) -> bool:
        """Too many malformed rows in one file: past both the share and the floor, or all."""
        bad, rows = result.rows_quarantined, result.rows_in
        if not bad:
            return False
        return bad == rows or (bad > self.max_share * rows and bad > self.min_rows)

    def _report(self, source: str, results: list[FileResult]) -> None:
        for name in dict.fromkeys(r.entity for r in results):
            mine = [r for r in results if r.entity == name]
            paths = "/".join(sorted({r.path for r in mine}))
            self.progress(
                f"  {source}.{name}: {sum(r.rows_loaded for r in mine):,} rows "
                f"from {len(mine)} file(s), "
                f"{sum(r.rows_quarantined for r in mine):,} quarantined "
                f"({paths}) in {sum(r.seconds for r in mine):.1f}s")

    def _audit_failure(self, conn: psycopg.Connection, spool: IO[str], batch_id: str,
                       load_id: str, source: str, day: date, results: list[FileResult],
                       started_at: datetime, message: str) -> None:
        try:
            with conn.transaction():
                self._write_meta(conn, spool, batch_id, load_id, source, day, results, 0,
                                 started_at, "failed", message)
        except psycopg.Error as exc:  # e.g. the connection itself is gone
            log.error("could not write the load_audit row of failed %s: %s", batch_id, exc)

    # -- one file ---------------------------------------------------------------------
    def _load_file(self, conn: psycopg.Connection, batch: LandingBatch, entity: Entity,
                   landed: LandedFile, reject: Callable[[int, str | None, str, str], None],
                   ) -> FileResult:
        t0 = time.monotonic()
        conn.execute("select set_config('dw.source_file', %s, true)",
                     (batch.file_url(landed.file),))
        try:
            header = _read_header(batch, landed)
        except FileNotFoundError:
            raise LandingError(
                f"{batch.file_url(landed.file)}: listed in the batch's manifest but missing "
                f"from the landing zone (removed after the extract?); pull the day again "
                f"with `run DAY --reextract`") from None
        contract = entity.column_names
        missing = [c for c in contract if c not in header]
        if missing:
            raise LoadError(
                f"{batch.file_url(landed.file)}: line 1 (header) lacks contract column(s) "
                f"{', '.join(missing)} of {entity.raw_table}; found {', '.join(header)}"
            )
        extra = [c for c in header if c not in contract]
        warnings = []
        if extra:
            warnings.append(f"{landed.file}: ignored column(s) outside the contract: "
                            f"{', '.join(extra)}")
            self.progress("  warning: " + warnings[-1])
        elif landed.origin and any(c.type == "timestamptz" for c in entity.columns):
            self.progress(f"  {landed.file}: delivered file with timestamps, validating "
                          f"row by row (COPY would take a timestamp without offset as UTC)")
        else:
            try:
                with conn.transaction():
                    rows = self._copy_fast(conn, batch, entity, landed, header)
                return FileResult(entity.name, landed.file, rows, rows, 0, "copy",
                                  time.monotonic() - t0, warnings)
            except psycopg.errors.DataError as exc:
                self.progress(f"  {landed.file}: PostgreSQL refused the file "
                              f"({exc.diag.message_primary}); validating row by row")
        rows_in, loaded, bad = self._copy_validated(conn, batch, entity, landed, header, reject)
        return FileResult(entity.name, landed.file, rows_in, loaded, bad, "validated",
                          time.monotonic() - t0, warnings)

    def _copy_fast(self, conn: psycopg.Connection, batch: LandingBatch, entity: Entity,
                   landed: LandedFile, header: list[str]) -> int:
        stmt = sql.SQL("copy {} ({}) from stdin with (format csv, header true)").format(
            qualified(entity.raw_table), sql.SQL(", ").join(sql.Identifier(c) for c in header))
        with batch.open_file(landed.file) as f, conn.cursor() as cur:
            reader = _HashingReader(f)
            # The unqueued writer sends each chunk before the next is read: memory stays
            # at one chunk whatever the file size (psycopg's default queues up to ~128 MB).
            with cur.copy(stmt, writer=LibpqWriter(cur)) as copy:
                while chunk := reader.read(CHUNK):
                    copy.write(memoryview(chunk))
            _check_integrity(landed, reader.sha.hexdigest(), reader.size)
            rows = cur.rowcount
        if rows != landed.rows:
            raise LandingError(f"{landed.file}: {rows} rows read, manifest says {landed.rows}")
        return rows

    def _copy_validated(self, conn: psycopg.Connection, batch: LandingBatch, entity: Entity,
                        landed: LandedFile, header: list[str],
                        reject: Callable[[int, str | None, str, str], None],
                        ) -> tuple[int, int, int]:
        contract = entity.column_names
        positions = [header.index(c) for c in contract]
        types = [entity.column(c).type for c in contract]
        stmt = sql.SQL("copy {} ({}) from stdin").format(
            qualified(entity.raw_table), sql.SQL(", ").join(sql.Identifier(c) for c in contract))
        rows_in = loaded = bad = 0
        with batch.open_file(landed.file) as f, conn.cursor() as cur:
            reader = _HashingReader(f)
            # utf-8-sig skips a byte-order mark; undecodable bytes survive as surrogates
            # so the row that holds them is quarantined, not the whole file.
            text = io.TextIOWrapper(io.BufferedReader(reader, CHUNK), encoding="utf-8-sig",
                                    errors="surrogateescape", newline="")
            with cur.copy(stmt, writer=LibpqWriter(cur)) as copy:
                for record in islice(records(text), 1, None):  # after the header
                    rows_in += 1
                    problem = (None, record.problem) if record.problem else _check_record(
                        record.fields, header, positions, types, contract)
                    if problem:
                        field_name, reason = problem
                        bad += 1
                        reject(record.line, field_name, reason, _printable(record.text))
                        continue
                    copy.write_row([record.fields[p] for p in positions])
                    loaded += 1
            _check_integrity(landed, reader.sha.hexdigest(), reader.size)
        if rows_in != landed.rows:
            raise LandingError(f"{landed.file}: {rows_in} rows read, "
                               f"manifest says {landed.rows}")
        return rows_in, loaded, bad

    # -- bookkeeping ------------------------------------------------------------------
    def _quarantine_message(self, batch_id: str, failing: list[FileResult],
                            spool: IO[str]) -> str:
        files = {r.file for r in failing}
        spool.seek(0)
        examples = []
        for row in csv.reader(spool):
            if row[5].rsplit("/", 1)[-1] in files:
                examples.append(f"{row[5]} line {row[6]}, field {row[7] or '-'}: {row[8]}")
            if len(examples) == 5:
                break
        spool.seek(0, io.SEEK_END)
        counts = "; ".join(
            f"{r.file}: {r.rows_quarantined} of {r.rows_in} rows"
            + (" (all of them)" if r.rows_quarantined == r.rows_in else
               f" ({r.rows_quarantined / r.rows_in:.2%})") for r in failing)
        return (f"{batch_id}: too many malformed rows ({counts}); a file fails past "
                f"QUARANTINE_MAX_SHARE {self.max_share:.2%} of its rows and "
                f"QUARANTINE_MIN_ROWS {self.min_rows} rows, or when all its rows are "
                f"malformed. Nothing of the batch was loaded. First problems:\n  "
                + "\n  ".join(examples))

    def _write_meta(self, conn: psycopg.Connection, spool: IO[str], batch_id: str,
                    load_id: str, source: str, day: date, results: list[FileResult],
                    replaced: int, started_at: datetime, status: str,
                    message: str | None) -> None:
        if status == "loaded":
            # The batch's quarantine is replaced with its data; failed attempts only add.
            conn.execute("delete from raw_meta.quarantine where batch_id = %s", (batch_id,))
        spool.flush()
        spool.seek(0)
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in QUARANTINE_COLUMNS)
        with conn.cursor() as cur, cur.copy(
            sql.SQL("copy raw_meta.quarantine ({}) from stdin with (format csv)").format(columns)
        ) as copy:
            while chunk := spool.read(CHUNK):
                copy.write(chunk)
        finished = datetime.now().astimezone()
        with conn.cursor() as cur:
            cur.executemany(
                "insert into raw_meta.load_audit values "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (load_id, batch_id, source, r.entity, day, r.file, r.rows_in,
                     r.rows_loaded if status == "loaded" else 0, r.rows_quarantined,
                     replaced, r.path, started_at, finished, r.seconds, status,
                     "; ".join(filter(None, [*r.warnings, message])) or None)
                    for r in results
                ],
            )


def _where(batch: LandingBatch, results: list[FileResult]) -> str:
    """The file a load failed on, as the start of a message."""
    if results and results[-1].path == "failed":
        return f"{batch.file_url(results[-1].file)}: "
    return ""


def _check_record(fields: list[str | None], header: list[str], positions: list[int],
                  types: list[PgType], contract: list[str]) -> tuple[str | None, str] | None:
    if len(fields) != len(header):
        return None, f"has {len(fields)} fields, the header has {len(header)}"
    for name, pos, type_ in zip(contract, positions, types, strict=True):
        value = fields[pos]
        if value is None:
            continue
        reason = check_value(type_, value)
        if reason:
            return name, reason
    return None


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
