"""Survey inbox pickup: files by export date, byte-for-byte landing, unmatched names kept."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from defection_warehouse.extract.survey import extract_survey
from defection_warehouse.landing import LandingZone

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
    landed = tmp_path / "landing" / "survey" / "2026-05-02" / "responses_2026-05-01.csv"
    original = inbox / "responses_2026-05-01.csv"
    assert hashlib.sha256(landed.read_bytes()).hexdigest() == \
        hashlib.sha256(original.read_bytes()).hexdigest() == first.files[0].sha256
    assert original.exists()  # the inbox is read, never changed


def test_a_day_without_exports_commits_an_empty_batch_that_loads(
        tmp_path: Path, warehouse_url: str) -> None:
    from defection_warehouse.raw_loader import RawLoader

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
