"""Damaged files as real export tools write them: each is loaded, quarantined row by row,
or fails its night with a message that names the file and line, and every failure leaves
a `raw_meta.load_audit` row."""

from __future__ import annotations

import codecs
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.db import one_row
from defection_warehouse.load.raw_loader import LoadError, QuarantineThresholdExceeded, RawLoader
from defection_warehouse.quality.gate import _Batch, _Target, _volume_parameters
from defection_warehouse.quality.suites import VolumeBand
from defection_warehouse.sources.landing import LandingError, LandingZone
from defection_warehouse.sources.survey import extract_survey

DAY = date(2026, 5, 2)
HEADER = "response_id,survey_id,respondent_email,submitted_at,score,comment"


def response(i: int, stamp: str = "2026-05-01T10:00:00+00:00", comment: str = "") -> str:
    return f"r{i},s1,p{i}@x.io,{stamp},{i % 11},{comment}"


def drop(inbox: Path, name: str, lines: list[str], header: str = HEADER,
         prefix: bytes = b"") -> Path:
    path = inbox / name
    path.write_bytes(prefix + "".join(f"{line}\n" for line in [header, *lines]).encode())
    return path


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def zone(tmp_path: Path) -> LandingZone:
    return LandingZone(str(tmp_path / "landing"))


def land_and_load(zone: LandingZone, inbox: Path, url: str, day: date = DAY, **kw: int):
    extract_survey(zone, day, str(inbox))
    return RawLoader(url, zone, **kw).load("survey", day)


def audit(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select source_file, rows_in, rows_loaded, rows_quarantined, status, message "
            "from raw_meta.load_audit order by finished_at, source_file").fetchall()


def quarantine(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select source_file, line_number, field, reason from raw_meta.quarantine "
            "order by source_file, line_number").fetchall()


def test_a_byte_order_mark_is_skipped(inbox: Path, zone: LandingZone,
                                      warehouse_url: str) -> None:
    drop(inbox, "responses_2026-05-01.csv", [response(i) for i in range(3)],
         prefix=codecs.BOM_UTF8)
    result = land_and_load(zone, inbox, warehouse_url)

    assert (result.rows_loaded, result.rows_quarantined) == (3, 0)
    with psycopg.connect(warehouse_url) as conn:
        ids = [r[0] for r in conn.execute(
            "select response_id from raw_survey.responses order by 1")]
    assert ids == ["r0", "r1", "r2"]


def test_invalid_utf8_is_an_encoding_error_with_file_line_and_byte(
        inbox: Path, zone: LandingZone, warehouse_url: str) -> None:
    path = drop(inbox, "responses_2026-05-01.csv", [response(i) for i in range(400)])
    path.write_bytes(path.read_bytes().replace(b"p7@x.io", b"p7@x\xff.io"))
    result = land_and_load(zone, inbox, warehouse_url)

    assert (result.rows_loaded, result.rows_quarantined) == (399, 1)
    [(file, line, _, reason)] = quarantine(warehouse_url)
    assert file.endswith("responses_2026-05-01.csv") and line == 9
    assert "encoding error: byte 0xff at byte 10 of the line" in reason

    broken = drop(inbox, "responses_2026-05-03.csv", [response(500)],
                  header=HEADER.replace("comment", "comm\xe9nt"))
    broken.write_bytes(broken.read_bytes().replace("é".encode(), b"\xe9"))
    with pytest.raises(LoadError) as err:
        land_and_load(zone, inbox, warehouse_url, day=DAY + timedelta(days=1))
    assert "responses_2026-05-03.csv: line 1 (header): encoding error: byte 0xe9 at " \
           "byte offset 62" in str(err.value)


def test_malformed_rows_are_limited_per_file_with_a_floor(
        inbox: Path, zone: LandingZone, warehouse_url: str) -> None:
    # one bad row of 70 is quarantined; the file still loads
    drop(inbox, "responses_2026-05-01.csv",
         [response(i, comment="ok") for i in range(69)] + [response(69, stamp="yesterday")])
    result = land_and_load(zone, inbox, warehouse_url)
    assert (result.rows_in, result.rows_loaded, result.rows_quarantined) == (70, 69, 1)

    # 20 malformed rows of one file fail the night beside 2,433 good rows of another
    day = DAY + timedelta(days=1)
    drop(inbox, "responses_2026-05-03.csv", [response(1000 + i) for i in range(2433)])
    drop(inbox, "surveys_2026-05-03.csv", ["x,not-a-survey"] * 20,
         header="survey_id,kind,title,created_at")
    with pytest.raises(QuarantineThresholdExceeded) as err:
        land_and_load(zone, inbox, warehouse_url, day=day)
    assert "surveys_2026-05-03.csv: 20 of 20 rows (all of them)" in str(err.value)
    with psycopg.connect(warehouse_url) as conn:
        kept = one_row(conn.execute("select count(*) from raw_survey.responses"))[0]
    assert kept == 69  # nothing of the failed batch was loaded


def test_a_file_whose_rows_are_all_malformed_fails_however_small(
        inbox: Path, zone: LandingZone, warehouse_url: str) -> None:
    drop(inbox, "responses_2026-05-01.csv", [response(1, stamp="soon")])
    with pytest.raises(QuarantineThresholdExceeded, match="1 of 1 rows"):
        land_and_load(zone, inbox, warehouse_url)


def test_timestamps_without_an_offset_are_quarantined(
        inbox: Path, zone: LandingZone, warehouse_url: str) -> None:
    drop(inbox, "responses_2026-05-01.csv",
         [response(i) for i in range(600)] + [response(600, stamp="2026-05-01 10:00:00")])
    result = land_and_load(zone, inbox, warehouse_url)

    assert (result.rows_loaded, result.rows_quarantined) == (600, 1)
    [(_, line, field, reason)] = quarantine(warehouse_url)
    assert (line, field) == (602, "submitted_at")
    assert "'2026-05-01 10:00:00' has no UTC offset" in reason


def test_a_repeated_header_column_fails_with_file_line_and_an_audit_row(
        inbox: Path, zone: LandingZone, warehouse_url: str) -> None:
    drop(inbox, "responses_2026-05-01.csv", [response(i) + ",again" for i in range(4)],
         header=HEADER + ",comment")
    with pytest.raises(LoadError) as err:
        land_and_load(zone, inbox, warehouse_url)
    assert "responses_2026-05-01.csv: line 1 (header) names column(s) more than once: " \
           "comment" in str(err.value)
    [(file, rows_in, loaded, _, status, message)] = audit(warehouse_url)
    assert file == "responses_2026-05-01.csv" and status == "failed"
    assert (rows_in, loaded) == (4, 0)  # the rows the file holds, not 0
    assert "more than once" in message


def test_a_landing_file_removed_after_its_manifest_is_named_and_audited(
        inbox: Path, zone: LandingZone, warehouse_url: str) -> None:
    drop(inbox, "responses_2026-05-01.csv", [response(i) for i in range(3)])
    extract_survey(zone, DAY, str(inbox))
    batch = zone.batch("survey", DAY)
    Path(batch.file_url("responses_2026-05-01.csv")).unlink()

    with pytest.raises(LandingError) as err:
        RawLoader(warehouse_url, zone).load("survey", DAY)
    assert "responses_2026-05-01.csv: listed in the batch's manifest but missing" \
        in str(err.value)
    assert "--reextract" in str(err.value)
    [(file, rows_in, _, _, status, message)] = audit(warehouse_url)
    assert (file, rows_in, status) == ("responses_2026-05-01.csv", 3, "failed")
    assert "missing from the landing zone" in message


def test_an_empty_file_says_it_is_empty(inbox: Path, zone: LandingZone,
                                        warehouse_url: str) -> None:
    (inbox / "responses_2026-05-01.csv").write_bytes(b"")
    with pytest.raises(LoadError, match=r"responses_2026-05-01.csv: the file is empty"):
        land_and_load(zone, inbox, warehouse_url)
    assert [r[4] for r in audit(warehouse_url)] == ["failed"]


def test_quoted_and_unquoted_empty_fields_load_the_same_on_both_paths(
        tmp_path: Path, warehouse_url: str, new_database) -> None:
    """PostgreSQL's rule on both paths: "" is an empty string, nothing at all is NULL."""
    lines = ['r1,s1,"",2026-05-01T10:00:00Z,5,', 'r2,s1,,2026-05-01T10:00:00Z,6,""',
             'r3,s1,"a@x.io",2026-05-01T10:00:00Z,7,"he said ""no"""']
    loaded = {}
    for path, extra in (("copy", []), ("validated", ["r4,s1,x,not-a-time,1,"])):
        inbox = tmp_path / path
        inbox.mkdir()
        # crm-free survey batch; the one malformed row sends the file row by row
        drop(inbox, "surveys_2026-05-01.csv", [], header="survey_id,kind,title,created_at")
        drop(inbox, "responses_2026-05-01.csv", lines + extra)
        url = new_database("dwtest_empty")
        zone = LandingZone(str(tmp_path / f"landing_{path}"))
        result = land_and_load(zone, inbox, url, min_quarantine_rows=5,
                               max_quarantine_share=0.5)
        assert result.rows_quarantined == len(extra)
        with psycopg.connect(url) as conn:
            loaded[path] = conn.execute(
                "select response_id, respondent_email, comment from raw_survey.responses "
                "order by 1").fetchall()
    assert loaded["copy"] == loaded["validated"] == [
        ("r1", "", None), ("r2", None, ""), ("r3", "a@x.io", 'he said "no"')]


def test_the_volume_note_tells_too_little_history_from_empty_batches() -> None:
    def note(rows: list[int]) -> str | None:
        history = [_Batch(date(2026, 5, i + 1), n, False) for i, n in enumerate(rows)]
        target = _Target(suite="s", schema="raw_crm", table="t", batch="b")
        from defection_warehouse.sources.contracts import entity

        return _volume_parameters(entity("crm", "tickets"), VolumeBand(min_history=3),
                                  history, target)

    assert note([10, 12]) == "too little history (2 of the 3 previous batches it needs)"
    assert note([0, 0, 0]) == "the median of its 3 previous batches is 0 rows"
    assert note([10, 12, 11]) is None


def test_run_takes_reextract_and_full_refresh(monkeypatch) -> None:
    """`run START --end END --reextract --full-refresh` runs every day from START to END
    with both flags; without them, START alone and neither flag. The pipeline is not run:
    the command's warehouse, DAG runs and summary are replaced by recorders."""
    from typer.testing import CliRunner

    from defection_warehouse import cli

    calls: list[tuple[list[date], bool, bool]] = []

    def run_days(days, settings, warehouse, crm, *, reextract=False, full_refresh=False):
        calls.append((days, reextract, full_refresh))

    monkeypatch.setattr("dotenv.load_dotenv", lambda *args, **kwargs: False)  # no .env
    monkeypatch.setenv("DW_SOURCES", "billing")  # no CRM database to create
    monkeypatch.setattr(cli, "warehouse_url", lambda settings: "postgresql://test/none")
    monkeypatch.setattr(cli, "run_days", run_days)
    monkeypatch.setattr(cli, "print_summary", lambda warehouse, day: None)
    runner = CliRunner()

    done = runner.invoke(cli.app, ["run", "2026-10-01", "--end", "2026-10-03", "--reextract",
                                   "--full-refresh"])
    assert done.exit_code == 0, done.output
    first = date(2026, 10, 1)
    assert calls.pop() == ([first, date(2026, 10, 2), date(2026, 10, 3)], True, True)

    done = runner.invoke(cli.app, ["run", "2026-10-01"])
    assert done.exit_code == 0, done.output
    assert calls.pop() == ([first], False, False)

    done = runner.invoke(cli.app, ["run", "2026-10-03", "--end", "2026-10-01"])
    assert done.exit_code != 0 and not calls
    done = runner.invoke(cli.app, ["run", "2026-10-32"])
    assert done.exit_code == 2 and "YYYY-MM-DD" in done.output and not calls
