"""Raw loader against a real PostgreSQL: idempotency, quarantine, crash safety, schema drift."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.db import one_row, table_checksum
from defection_warehouse.load.raw_loader import (
    LoadError,
    QuarantineThresholdExceeded,
    RawLoader,
)
from defection_warehouse.sources.contracts import entity
from defection_warehouse.sources.landing import LandingError, LandingZone

DAY = date(2026, 3, 1)
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
ACCOUNTS = entity("crm", "accounts")
USAGE = entity("crm", "usage_snapshots")


def account_row(i: int) -> list[object]:
    return [i, f"Company {i}", f"c{i}.example", "software", 10 + i, "smb", "emea",
            "Owner A", T0, T0 + timedelta(minutes=i), False]


def write_batch(zone: LandingZone, day: date, accounts: int = 50, usage: int = 200,
                bad_lines: dict[int, str] | None = None) -> None:
    """A committed CRM batch; `bad_lines` replaces account rows (by index) with raw text."""
    batch = zone.batch("crm", day)
    batch.reset()
    with batch.writer(ACCOUNTS) as w:
        for i in range(accounts):
            w.write_row(account_row(i))
    with batch.writer(USAGE) as w:
        for i in range(usage):
            w.write_row([i % 50, day - timedelta(days=i // 50), i % 7, 10, T0, T0, False])
    batch.commit([ACCOUNTS, USAGE], {"start": None, "end": day.isoformat()})
    if bad_lines:
        path = Path(batch.file_url("accounts.csv"))
        lines = path.read_text().split("\n")
        for i, text in bad_lines.items():
            lines[i + 1] = text
        path.write_text("\n".join(lines))
        _rewrite_manifest(path)


def checksums(url: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return {t: table_checksum(conn, t)
                for t in ("raw_crm.accounts", "raw_crm.usage_snapshots", "raw_meta.quarantine")}


def test_same_date_twice_gives_identical_raw_state(tmp_path: Path, warehouse_url: str) -> None:
    zone = LandingZone(str(tmp_path / "landing"))
    write_batch(zone, DAY)
    write_batch(zone, DAY + timedelta(days=1), accounts=5, usage=10)
    loader = RawLoader(warehouse_url, zone)
    first = loader.load("crm", DAY)
    loader.load("crm", DAY + timedelta(days=1))
    before = checksums(warehouse_url)
    second = loader.load("crm", DAY)
    after = checksums(warehouse_url)

    assert first.rows_loaded == second.rows_loaded == 250
    assert second.rows_replaced == 250
    assert before == after
    assert before["raw_crm.accounts"][0] == 55
    with psycopg.connect(warehouse_url) as conn:
        stamps = conn.execute(
            "select distinct _batch_id, _logical_date, _source_file like '%%/crm/2026-03-01/"
            "accounts.csv' from raw_crm.accounts where _logical_date = %s", (DAY,)).fetchall()
        audit = conn.execute(
            "select count(*), sum(rows_loaded), min(status) from raw_meta.load_audit "
            "where batch_id = 'crm:2026-03-01'").fetchone()
    assert stamps == [("crm:2026-03-01", DAY, True)]
    assert audit == (4, 500, "loaded")  # two files, two loads


def test_load_leaves_the_load_time_index_summarized(tmp_path: Path, warehouse_url: str) -> None:
    """The staging models find a night's rows through the BRIN index on _loaded_at. A page
    range the index has not summarized matches every search (PostgreSQL summarizes only
    when it vacuums), so the loader summarizes the pages each load appended. (A range is
    128 pages: enough usage rows for a few full ranges; the last, partly filled one is
    left to the next load.)"""
    zone = LandingZone(str(tmp_path / "landing"))
    write_batch(zone, DAY, usage=30_000)
    write_batch(zone, DAY + timedelta(days=1), accounts=5, usage=30_000)
    loader = RawLoader(warehouse_url, zone)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        for day in (DAY, DAY + timedelta(days=1)):
            loader.load("crm", day)
            left = {name: one_row(conn.execute("select brin_summarize_new_values(%s::regclass)",
                                               (f"raw_crm.{name}__loaded_at",)))[0]
                    for name in ("accounts", "usage_snapshots")}
            assert left == {"accounts": 0, "usage_snapshots": 0}, day


def test_malformed_rows_are_quarantined_with_file_line_and_field(
        tmp_path: Path, warehouse_url: str) -> None:
    zone = LandingZone(str(tmp_path / "landing"))
    bad = "7,Company 7,c7.example,software,twelve,smb,emea,Owner A,2026-03-01T08:00:00+00:00,"\
        "2026-03-01T08:00:00+00:00,false"  # employee_count is not a number
    short = "9,Company 9,c9.example,software,19"  # too few fields
    write_batch(zone, DAY, accounts=1000, bad_lines={7: bad, 9: short})
    result = RawLoader(warehouse_url, zone, max_quarantine_share=0.01).load("crm", DAY)

    assert result.rows_quarantined == 2
    assert result.rows_loaded == 1198
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            "select source_file, line_number, field, reason from raw_meta.quarantine "
            "order by line_number").fetchall()
        loaded_ids = {r[0] for r in conn.execute("select account_id from raw_crm.accounts")}
    assert [(Path(f).name, line, fld) for f, line, fld, _ in rows] == [
        ("accounts.csv", 9, "employee_count"), ("accounts.csv", 11, None)]
    assert "'twelve' is not a whole number" in rows[0][3]
    assert "has 5 fields, the header has 11" in rows[1][3]
    assert "7" not in loaded_ids and "9" not in loaded_ids and "8" in loaded_ids


def test_run_fails_past_quarantine_threshold_and_keeps_previous_batch(
        tmp_path: Path, warehouse_url: str) -> None:
    zone = LandingZone(str(tmp_path / "landing"))
    write_batch(zone, DAY)
    loader = RawLoader(warehouse_url, zone, max_quarantine_share=0.01)
    loader.load("crm", DAY)
    before = checksums(warehouse_url)

    bad = {i: f"{i},Company {i},c{i}.example,software,10,smb,emea,Owner A,not-a-time,"
              "2026-03-01T08:00:00+00:00,false" for i in range(6)}
    write_batch(zone, DAY, bad_lines=bad)  # 6 of accounts.csv's 50 rows: > 1% and > 5 rows
    with pytest.raises(QuarantineThresholdExceeded) as err:
        loader.load("crm", DAY)
    message = str(err.value)
    assert "accounts.csv: 6 of 50 rows (12.00%)" in message
    assert "accounts.csv line 2, field created_at: 'not-a-time' is not an ISO 8601" in message

    with psycopg.connect(warehouse_url) as conn:
        data_after = {t: table_checksum(conn, t)
                      for t in ("raw_crm.accounts", "raw_crm.usage_snapshots")}
        failed = one_row(conn.execute(
            "select count(*) from raw_meta.quarantine where load_id in "
            "(select load_id from raw_meta.load_audit where status = 'failed')"))[0]
    assert data_after == {k: before[k] for k in data_after}
    assert failed == 6


def test_missing_column_fails_naming_file_and_column(tmp_path: Path, warehouse_url: str) -> None:
    zone = LandingZone(str(tmp_path / "landing"))
    write_batch(zone, DAY)
    path = tmp_path / "landing" / "crm" / DAY.isoformat() / "accounts.csv"
    text = path.read_text().replace("segment,", "sales_segment,", 1)
    path.write_text(text)
    _rewrite_manifest(path)
    with pytest.raises(LoadError, match=r"accounts.csv: line 1 \(header\) lacks contract "
                                        r"column\(s\) segment"):
        RawLoader(warehouse_url, zone).load("crm", DAY)


def test_extra_column_is_tolerated_with_a_warning(tmp_path: Path, warehouse_url: str) -> None:
    zone = LandingZone(str(tmp_path / "landing"))
    write_batch(zone, DAY, accounts=3, usage=0)
    path = tmp_path / "landing" / "crm" / DAY.isoformat() / "accounts.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",health_score"] + [x + ",0.5" for x in lines[1:]])
                    + "\n")
    _rewrite_manifest(path)
    result = RawLoader(warehouse_url, zone).load("crm", DAY)
    assert result.rows_loaded == 3
    with psycopg.connect(warehouse_url) as conn:
        msg = one_row(conn.execute("select message from raw_meta.load_audit "
                                   "where entity = 'accounts'"))[0]
    assert "ignored column(s) outside the contract: health_score" in msg


def test_landing_file_changed_after_extract_is_refused(tmp_path: Path,
                                                       warehouse_url: str) -> None:
    zone = LandingZone(str(tmp_path / "landing"))
    write_batch(zone, DAY, accounts=3, usage=0)
    path = tmp_path / "landing" / "crm" / DAY.isoformat() / "accounts.csv"
    path.write_text(path.read_text().replace("Company 1", "Company X"))
    with pytest.raises(LandingError, match="does not match the manifest"):
        RawLoader(warehouse_url, zone).load("crm", DAY)


def _rewrite_manifest(path: Path) -> None:
    import hashlib

    manifest_path = path.parent / "_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    data = path.read_bytes()
    for f in manifest["files"]:
        if f["file"] == path.name:
            f["bytes"] = len(data)
            f["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


KILL_SCRIPT = """
import sys
from datetime import date
from defection_warehouse.sources.landing import LandingZone
from defection_warehouse.load.raw_loader import RawLoader
RawLoader(sys.argv[1], LandingZone(sys.argv[2])).load("crm", date.fromisoformat(sys.argv[3]))
"""


def test_load_killed_half_way_leaves_no_partial_batch(
        tmp_path: Path, new_database, warehouse_url: str) -> None:
    zone = LandingZone(str(tmp_path / "landing"))
    write_batch(zone, DAY, accounts=50, usage=400_000)  # big second file: time to kill
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "plugins")}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, warehouse_url,
                             str(tmp_path / "landing"), DAY.isoformat()], env=env)
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                busy = one_row(conn.execute(
                    "select count(*) from pg_stat_progress_copy p "
                    "join pg_class c on c.oid = p.relid where c.relname = 'usage_snapshots' "
                    "and p.tuples_processed > 1000"))[0]
                if busy or proc.poll() is not None:
                    break
                time.sleep(0.02)
        assert proc.poll() is None, "loader finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The server notices the dead client and rolls back; wait for it to go.
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        for _ in range(200):
            if not one_row(conn.execute("select count(*) from pg_stat_activity where datname = "
                                        "current_database() and pid <> pg_backend_pid() "
                                        "and state <> 'idle'"))[0]:
                break
            time.sleep(0.05)
        visible = conn.execute("select (select count(*) from raw_crm.accounts), "
                               "(select count(*) from raw_crm.usage_snapshots), "
                               "(select count(*) from raw_meta.load_audit)").fetchone()
    assert visible == (0, 0, 0)

    RawLoader(warehouse_url, zone).load("crm", DAY)
    clean_url = new_database("dwtest_clean")
    RawLoader(clean_url, zone).load("crm", DAY)
    rerun, clean = checksums(warehouse_url), checksums(clean_url)
    assert rerun == clean
    assert rerun["raw_crm.usage_snapshots"][0] == 400_000


def test_raw_tables_of_an_older_contract_are_brought_up_to_date(
        warehouse_url: str, tmp_path: Path) -> None:
    """A warehouse loaded when CRM ids were numbers: the next load widens them to text
    (the digits stay), adds contract columns the table lacks, and loads text ids."""
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("create schema raw_crm")
        conn.execute("create table raw_crm.accounts (account_id bigint, name text, "
                     "_batch_id text, _logical_date date, _source_file text, "
                     "_loaded_at timestamptz)")
        conn.execute("insert into raw_crm.accounts values (42, 'Old', 'crm:2026-02-01', "
                     "'2026-02-01', 'accounts.csv', now())")
    zone = LandingZone(str(tmp_path / "landing"))
    write_batch(zone, DAY, accounts=3, usage=3)
    RawLoader(warehouse_url, zone, max_quarantine_share=0.01).load("crm", DAY)
    with psycopg.connect(warehouse_url) as conn:
        types = dict(conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw_crm' and table_name = 'accounts'").fetchall())
        ids = {r[0] for r in conn.execute("select account_id from raw_crm.accounts")}
    assert types["account_id"] == "text"
    assert types["segment"] == "text" and types["is_deleted"] == "boolean"
    assert ids == {"42", "0", "1", "2"}
