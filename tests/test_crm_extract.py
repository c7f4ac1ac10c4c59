"""CRM extract: incremental window with overlap, late commits, no duplicate versions."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from defection_warehouse.db import one_row, with_database
from defection_warehouse.load.raw_loader import RawLoader
from defection_warehouse.sources.contracts import CRM_ENTITIES
from defection_warehouse.sources.crm import extract_crm
from defection_warehouse.sources.landing import LandingZone

D1 = date(2026, 5, 10)
D2 = D1 + timedelta(days=1)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def create_crm(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("create schema crm")
        for e in CRM_ENTITIES:
            cols = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type))
                for c in e.columns)
            conn.execute(sql.SQL("create table {} ({}, primary key ({}))").format(
                sql.Identifier("crm", e.name), cols,
                sql.SQL(", ").join(sql.Identifier(k) for k in e.primary_key)))


def upsert_account(url: str, account_id: int, updated: datetime, name: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "insert into crm.accounts (account_id, name, segment, created_at, updated_at, "
            "is_deleted) values (%s, %s, 'smb', %s, %s, false) on conflict (account_id) "
            "do update set name = excluded.name, updated_at = excluded.updated_at",
            (account_id, name, at(D1, 0), updated))


def test_late_commit_inside_overlap_is_picked_up_once(
        tmp_path: Path, new_database, warehouse_url: str) -> None:
    crm = new_database("dwtest_crm")
    create_crm(crm)
    for i in range(1, 6):
        upsert_account(crm, i, at(D1, 9 + i), f"Account {i}")
    upsert_account(crm, 6, at(D1, 23, 45), "Tail row")  # inside D2's overlap, seen by D1
    zone = LandingZone(str(tmp_path / "landing"))

    first = extract_crm(zone, D1, crm, overlap_minutes=120)
    assert first.extract_window == {"start": None, "end": "2026-05-11T00:00:00+00:00"}
    assert first.state["rows"]["accounts"] == 6

    # Stamped 23:30 on D1 but committed after D1's extract ran: a late commit.
    upsert_account(crm, 7, at(D1, 23, 30), "Late row")
    upsert_account(crm, 2, at(D2, 8), "Account 2 renamed")
    second = extract_crm(zone, D2, crm, overlap_minutes=120)
    assert second.extract_window == {"start": "2026-05-10T22:00:00+00:00",
                                     "end": "2026-05-12T00:00:00+00:00"}
    assert second.state["rows"]["accounts"] == 2  # the late row and the rename, not row 6

    loader = RawLoader(warehouse_url, zone)
    loader.load("crm", D1)
    loader.load("crm", D2)
    with psycopg.connect(warehouse_url) as conn:
        versions = conn.execute(
            "select account_id, name, _logical_date from raw_crm.accounts "
            "order by account_id, updated_at").fetchall()
        dupes = one_row(conn.execute(
            "select count(*) from (select account_id, updated_at from raw_crm.accounts "
            "group by 1, 2 having count(*) > 1) d"))[0]
    assert dupes == 0
    assert ("7", "Late row", D2) in versions
    assert [v for v in versions if v[0] == "6"] == [("6", "Tail row", D1)]
    assert [v[1] for v in versions if v[0] == "2"] == ["Account 2", "Account 2 renamed"]
    assert len(versions) == 8


def test_rerun_reuses_committed_batch_and_force_re_extracts(
        tmp_path: Path, new_database) -> None:
    crm = new_database("dwtest_crm")
    create_crm(crm)
    upsert_account(crm, 1, at(D1, 10), "Account 1")
    zone = LandingZone(str(tmp_path / "landing"))
    first = extract_crm(zone, D1, crm)
    upsert_account(crm, 2, at(D1, 11), "Account 2")
    again = extract_crm(zone, D1, crm)
    forced = extract_crm(zone, D1, crm, force=True)
    assert again.to_json() == first.to_json()
    assert first.state["rows"]["accounts"] == 1
    assert forced.state["rows"]["accounts"] == 2
    landed = Path(zone.batch("crm", D1).file_url("accounts.csv")).read_text()
    assert landed.splitlines()[0] == ",".join(CRM_ENTITIES[0].column_names)
    assert "Account 2" in landed


def landing_files(root: Path) -> dict[str, str | None]:
    """Every path under `root` with the sha256 of its bytes (None for a folder)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else None for p in sorted(root.rglob("*"))}


def test_forced_re_extract_with_the_crm_unreachable_keeps_the_committed_batch(
        tmp_path: Path, new_database) -> None:
    crm = new_database("dwtest_crm")
    create_crm(crm)
    upsert_account(crm, 1, at(D1, 10), "Account 1")
    zone = LandingZone(str(tmp_path / "landing"))
    extract_crm(zone, D1, crm)
    before = landing_files(tmp_path / "landing")

    said: list[str] = []
    with pytest.raises(psycopg.OperationalError):
        extract_crm(zone, D1, with_database(crm, "dwtest_no_such_crm"), force=True,
                    progress=said.append)

    assert landing_files(tmp_path / "landing") == before
    assert "previous committed batch" in said[-1] and "kept unchanged" in said[-1]
    assert "Account 1" in Path(zone.batch("crm", D1).file_url("accounts.csv")).read_text()
