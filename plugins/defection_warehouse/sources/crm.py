"""CRM extract: rows changed in the data interval, read from the CRM database.

The window for logical date D ends at D+1 00:00 UTC and starts where the previous
committed CRM batch ended, minus an overlap (CRM_OVERLAP_MINUTES) that catches rows whose
`updated_at` fell before the previous extract but whose transaction committed after it.
Versions (key + updated_at) that the previous batch already landed are recorded in its
manifest and left out, so a version lands exactly once. With no previous batch the
extract is a full initial sync. Deletes arrive as rows with `is_deleted = true`.

The batch lands as ``<landing>/crm/<D>/v<UTC stamp>-<uuid>/<entity>.csv`` under a manifest
``<landing>/crm/<D>/_manifest.json`` written last (see `defection_warehouse.sources.landing`). A
forced re-extract writes a new version folder beside the committed one; if it fails (the
CRM database unreachable, say) the new folder is removed, the committed batch is kept as
it was and the error is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from psycopg import sql

from defection_warehouse.db import connect
from defection_warehouse.sources.contracts import CRM_ENTITIES, Entity
from defection_warehouse.sources.landing import LandingBatch, LandingZone, Manifest

log = logging.getLogger(__name__)

CRM_SCHEMA = "crm"


def window_end(logical_date: date) -> datetime:
    return datetime.combine(logical_date + timedelta(days=1), time(0), tzinfo=UTC)


def _key_columns(entity: Entity) -> list[str]:
    return [*entity.primary_key, entity.updated_column or "updated_at"]


def extract_crm(
    zone: LandingZone,
    logical_date: date,
    crm_url: str,
    *,
    overlap_minutes: int = 120,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    say = progress or log.info
    batch = zone.batch("crm", logical_date)
    if batch.exists() and not force:
        say(f"crm {logical_date}: landing batch already committed, reusing it")
        return batch.manifest()

    end = window_end(logical_date)
    overlap = timedelta(minutes=overlap_minutes)
    previous = zone.previous_batch("crm", logical_date)
    prev_manifest = previous.manifest() if previous else None
    prev_end = prev_manifest.extract_window.get("end") if prev_manifest else None
    start = datetime.fromisoformat(prev_end) - overlap if prev_end else None
    seen = (prev_manifest.state.get("overlap_keys", {}) if prev_manifest else {})
    overlap_keys: dict[str, list[list[str]]] = {}
    counts: dict[str, int] = {}

    # A new version of the batch: a failure leaves the committed one as it was.
    with batch.new_version(say):
        with connect(crm_url) as conn:
            # One snapshot for every table, so the batch is consistent across entities.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.execute("set time zone 'UTC'")
            conn.execute("set datestyle = 'ISO, YMD'")
            for entity in CRM_ENTITIES:
                rows = _extract_entity(conn, batch, entity, start, end,
                                       seen.get(entity.name, []))
                counts[entity.name] = rows
                overlap_keys[entity.name] = _keys_in_tail(conn, entity, end - overlap, end)
                say(f"crm.{entity.name}: {rows} rows changed in "
                    f"[{start.isoformat() if start else 'beginning'}, {end.isoformat()})")
            conn.rollback()

        return batch.commit(
            CRM_ENTITIES,
            {"start": start.isoformat() if start else None, "end": end.isoformat()},
            state={"rows": counts, "overlap_minutes": overlap_minutes,
                   "overlap_keys": overlap_keys},
        )


def _extract_entity(conn: psycopg.Connection, batch: LandingBatch, entity: Entity,
                    start: datetime | None, end: datetime, already: list[list[str]]) -> int:
    table = sql.Identifier(CRM_SCHEMA, entity.name)
    updated = sql.Identifier(entity.updated_column or "updated_at")
    keys = _key_columns(entity)
    where = [sql.SQL("{} < {}").format(updated, sql.Literal(end))]
    if start is not None:
        where.append(sql.SQL("{} >= {}").format(updated, sql.Literal(start)))
    if already:
        # Versions the previous batch landed from the overlap: a temp table keeps the
        # anti-join cheap and the values out of the SQL text.
        conn.execute("drop table if exists _crm_seen")
        conn.execute(sql.SQL("create temp table _crm_seen ({})").format(
            sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(k)) for k in keys)))
        with conn.cursor() as cur, cur.copy(
                sql.SQL("copy _crm_seen from stdin")) as copy:
            for key in already:
                copy.write_row(key)
        match = sql.SQL(" and ").join(
            sql.SQL("s.{k} = t.{k}::text").format(k=sql.Identifier(k)) for k in keys)
        where.append(sql.SQL("not exists (select 1 from _crm_seen s where {})").format(match))
    query = sql.SQL("copy (select {} from {} t where {} order by {}) "
                    "to stdout with (format csv, header true)").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in entity.column_names),
        table,
        sql.SQL(" and ").join(where),
        sql.SQL(", ").join(sql.Identifier(k) for k in keys),
    )
    with batch.stream(entity) as sink, conn.cursor() as cur:
        with cur.copy(query) as copy:
            for chunk in copy:
                sink.write(bytes(chunk))
        sink.rows = cur.rowcount
    return sink.rows


def _keys_in_tail(conn: psycopg.Connection, entity: Entity, tail_start: datetime,
                  end: datetime) -> list[list[str]]:
    """Key versions landed in the last overlap span, for the next batch to skip."""
    keys = _key_columns(entity)
    updated = sql.Identifier(entity.updated_column or "updated_at")
    query = sql.SQL("select {} from {} where {} >= %s and {} < %s order by 1").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in keys),
        sql.Identifier(CRM_SCHEMA, entity.name), updated, updated)
    return [list(r) for r in conn.execute(query, (tail_start, end))]
