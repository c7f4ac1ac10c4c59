"""Survey inbox pickup: files by name and checksum, byte-for-byte landing, unmatched names
kept, late and re-delivered exports, atomic re-extracts, batches of the old layout."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from defection_warehouse.sources import survey
from defection_warehouse.sources.contracts import SURVEY_ENTITIES
from defection_warehouse.sources.landing import LandingZone
from defection_warehouse.sources.survey import extract_survey

HEADER = "response_id,survey_id,respondent_email,submitted_at,score,comment\n"


def drop(inbox: Path, name: str, rows: list[str], header: str = HEADER) -> None:
    (inbox / name).write_text(header + "".join(r + "\n" for r in rows))


def test_inbox_files_are_landed_once_by_export_date(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    drop(inbox, "responses_2026-05-01.csv",
         ["r1,s1,a@x.io,2026-05-01T10:00:00+00:00,9,", 'r2,s1,b@x.io,2026-05-01T11:00:00+00:00,3,'
          '"slow, and\nbuggy"'])
    drop(inbox, "responses_2026-05-02.csv", ["r3,s1,c@x.io,2026-05-02T09:00:00+00:00,7,"])
    drop(inbox, "responses_2026-05-03.csv", ["r4,s1,d@x.io,2026-05-03T09:00:00+00:00,10,"])
    (inbox / "notes.txt").write_text("not an export")
    zone = LandingZone(str(tmp_path / "landing"))

    first = extract_survey(zone, date(2026, 5, 2), str(inbox))
    second = extract_survey(zone, date(2026, 5, 3), str(inbox))

    assert [(f.file, f.rows) for f in first.files] == [
        ("responses_2026-05-01.csv", 2), ("responses_2026-05-02.csv", 1)]
    assert [(f.file, f.rows) for f in second.files] == [("responses_2026-05-03.csv", 1)]
    assert first.state["ignored_files"] == ["notes.txt"]
    landed = Path(zone.batch("survey", date(2026, 5, 2)).file_url("responses_2026-05-01.csv"))
    original = inbox / "responses_2026-05-01.csv"
    assert hashlib.sha256(landed.read_bytes()).hexdigest() == \
        hashlib.sha256(original.read_bytes()).hexdigest() == first.files[0].sha256
    assert original.exists()  # the inbox is read, never changed


def test_a_day_without_exports_commits_an_empty_batch_that_loads(
        tmp_path: Path, warehouse_url: str) -> None:
    from defection_warehouse.load.raw_loader import RawLoader

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    drop(inbox, "responses_2026-05-01.csv", ["r1,s1,a@x.io,2026-05-01T10:00:00+00:00,9,"])
    zone = LandingZone(str(tmp_path / "landing"))
    extract_survey(zone, date(2026, 5, 1), str(inbox))

    quiet = extract_survey(zone, date(2026, 5, 2), str(inbox))

    assert quiet.files == [] and quiet.total_rows == 0
    assert zone.committed_dates("survey") == [date(2026, 5, 1), date(2026, 5, 2)]
    loader = RawLoader(warehouse_url, zone)
    assert loader.load("survey", date(2026, 5, 1)).rows_loaded == 1
    assert loader.load("survey", date(2026, 5, 2)).rows_loaded == 0


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def landing_files(root: Path) -> dict[str, str | None]:
    """Every path under `root` with the sha256 of its bytes (None for a folder)."""
    return {str(p.relative_to(root)): sha(p) if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def test_late_and_re_delivered_exports_are_landed_once_and_later_ones_wait(
        tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    zone = LandingZone(str(tmp_path / "landing"))
    drop(inbox, "responses_2026-05-01.csv", ["r1,s1,a@x.io,2026-05-01T10:00:00+00:00,9,"])
    first = extract_survey(zone, date(2026, 5, 1), str(inbox))
    drop(inbox, "responses_2026-05-03.csv", ["r3,s1,c@x.io,2026-05-03T09:00:00+00:00,7,"])
    drop(inbox, "responses_2026-05-05.csv", ["r5,s1,e@x.io,2026-05-05T09:00:00+00:00,6,"])
    third = extract_survey(zone, date(2026, 5, 3), str(inbox))
    assert [f.file for f in third.files] == ["responses_2026-05-03.csv"]
    assert third.state["waiting_files"] == 1

    # After the night of 05-03: an export of 05-02 arrives late, and 05-01 is exported
    # again with a corrected score (same size, other bytes).
    drop(inbox, "responses_2026-05-02.csv", ["r2,s1,b@x.io,2026-05-02T09:00:00+00:00,4,"])
    drop(inbox, "responses_2026-05-01.csv", ["r1,s1,a@x.io,2026-05-01T10:00:00+00:00,8,"])
    said: list[str] = []
    fourth = extract_survey(zone, date(2026, 5, 4), str(inbox), progress=said.append)

    assert [f.file for f in fourth.files] == ["responses_2026-05-01.csv",
                                              "responses_2026-05-02.csv"]
    assert fourth.state["late_files"] == ["responses_2026-05-02.csv"]
    assert fourth.state["redelivered_files"] == ["responses_2026-05-01.csv"]
    assert fourth.state["new_files"] == []
    assert fourth.state["already_landed"] == 1 and fourth.state["waiting_files"] == 1
    assert fourth.extract_window == {"start": "2026-05-04", "end": "2026-05-05"}
    assert any("responses_2026-05-02.csv is late" in line for line in said)
    assert any("responses_2026-05-01.csv re-delivered with different content" in line
               for line in said)
    assert any("1 inbox file(s) dated after 2026-05-04 left for a later night" in line
               for line in said)
    redelivered = fourth.files[0]
    assert redelivered.sha256 == sha(inbox / "responses_2026-05-01.csv") != \
        first.files[0].sha256
    with zone.batch("survey", date(2026, 5, 4)).open_file(redelivered.file) as f:
        assert b",8," in f.read()

    fifth = extract_survey(zone, date(2026, 5, 5), str(inbox))
    sixth = extract_survey(zone, date(2026, 5, 6), str(inbox))
    assert [f.file for f in fifth.files] == ["responses_2026-05-05.csv"]
    assert fifth.state["new_files"] == ["responses_2026-05-05.csv"]
    assert fifth.state["late_files"] == fifth.state["redelivered_files"] == []
    assert sixth.files == [] and sixth.state["already_landed"] == 4

    landed = Counter((f.file, f.sha256) for m in (first, third, fourth, fifth, sixth)
                     for f in m.files)
    assert set(landed.values()) == {1}  # every content of every export landed once
    assert sorted(name for name, _ in landed) == [
        "responses_2026-05-01.csv", "responses_2026-05-01.csv", "responses_2026-05-02.csv",
        "responses_2026-05-03.csv", "responses_2026-05-05.csv"]


def test_old_exports_are_hashed_only_when_size_or_stamp_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[str] = []
    real = survey._sha256
    monkeypatch.setattr(survey, "_sha256",
                        lambda fs, path: hashed.append(path.rsplit("/", 1)[-1]) or real(fs, path))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    zone = LandingZone(str(tmp_path / "landing"))
    export = inbox / "responses_2026-05-01.csv"
    drop(inbox, export.name, ["r1,s1,a@x.io,2026-05-01T10:00:00+00:00,9,"])
    extract_survey(zone, date(2026, 5, 1), str(inbox))

    quiet = extract_survey(zone, date(2026, 5, 2), str(inbox))
    assert quiet.files == [] and hashed == []  # same size and stamp: not read at all

    stamp = export.stat().st_mtime + 60  # touched, same bytes: hashed once, not landed
    os.utime(export, (stamp, stamp))
    touched = extract_survey(zone, date(2026, 5, 3), str(inbox))
    again = extract_survey(zone, date(2026, 5, 4), str(inbox))
    assert touched.files == again.files == [] and hashed == [export.name]

    drop(inbox, export.name, ["r1,s1,a@x.io,2026-05-01T10:00:00+00:00,10,"])  # longer
    grown = extract_survey(zone, date(2026, 5, 5), str(inbox))
    assert grown.state["redelivered_files"] == [export.name] and hashed == [export.name]


def test_forced_re_extract_with_the_inbox_gone_keeps_the_committed_batch(
        tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    drop(inbox, "responses_2026-05-01.csv", ["r1,s1,a@x.io,2026-05-01T10:00:00+00:00,9,"])
    zone = LandingZone(str(tmp_path / "landing"))
    extract_survey(zone, date(2026, 5, 1), str(inbox))
    before = landing_files(tmp_path / "landing")

    shutil.rmtree(inbox)
    said: list[str] = []
    with pytest.raises(FileNotFoundError, match="survey inbox"):
        extract_survey(zone, date(2026, 5, 1), str(inbox), force=True, progress=said.append)

    assert landing_files(tmp_path / "landing") == before
    assert "previous committed batch" in said[-1] and "kept unchanged" in said[-1]


def test_a_batch_of_the_old_layout_still_reads_and_is_replaced_by_a_version(
        tmp_path: Path, warehouse_url: str) -> None:
    """Batches landed before version folders: files in the date folder, no `folder`."""
    from defection_warehouse.load.raw_loader import RawLoader

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    drop(inbox, "responses_2026-05-01.csv", ["r1,s1,a@x.io,2026-05-01T10:00:00+00:00,9,"])
    day_folder = tmp_path / "landing" / "survey" / "2026-05-01"
    day_folder.mkdir(parents=True)
    old = day_folder / "responses_2026-05-01.csv"
    shutil.copyfile(inbox / old.name, old)
    (day_folder / "_manifest.json").write_text(json.dumps({
        "source": "survey", "logical_date": "2026-05-01",
        "extract_window": {"start": None, "end": "2026-05-02"},
        "extracted_at": "2026-05-02T03:00:00+00:00",
        "files": [{"entity": "responses", "file": old.name, "rows": 1,
                   "bytes": old.stat().st_size, "sha256": sha(old),
                   "origin": str(inbox / old.name)}],
        "schema": {e.name: [{"name": c.name, "type": c.type} for c in e.columns]
                   for e in SURVEY_ENTITIES},
        "state": {"rows": {"responses": 1}, "ignored_files": [], "inbox": str(inbox)},
    }, indent=2))
    zone = LandingZone(str(tmp_path / "landing"))

    batch = zone.batch("survey", date(2026, 5, 1))
    assert batch.manifest().folder is None
    assert Path(batch.file_url(old.name)) == old
    with batch.open_file(old.name) as f:
        assert f.read() == old.read_bytes()
    assert RawLoader(warehouse_url, zone).load("survey", date(2026, 5, 1)).rows_loaded == 1
    # the next night knows the old batch's export by name and checksum
    assert extract_survey(zone, date(2026, 5, 2), str(inbox)).files == []

    forced = extract_survey(zone, date(2026, 5, 1), str(inbox), force=True)
    assert forced.folder and not old.exists()
    assert sorted(p.name for p in day_folder.iterdir()) == ["_manifest.json", forced.folder]
    assert sha(day_folder / forced.folder / old.name) == forced.files[0].sha256
    assert RawLoader(warehouse_url, zone).load("survey", date(2026, 5, 1)).rows_loaded == 1
