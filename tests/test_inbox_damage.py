"""Damaged survey exports over several nights, through the same steps as the DAG.

A small business has one good night; then, night after night, the survey inbox receives
what real export tools produce: a byte-order mark, timestamps without an offset, a byte
that is not UTF-8, quoted empty fields, an export delivered late, a file whose every row
is malformed, a header that repeats a column, and finally corrected re-deliveries of the
broken files. For every file of every night: the rows in the file are the rows loaded
plus the rows quarantined, or the night failed with a message that names the file; and
the published schema changed only on the nights that passed.
"""

from __future__ import annotations

import codecs
import csv
import io
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.db import one_row
from defection_warehouse.pipeline import StepFailed
from defection_warehouse.sample import SampleParams, generate
from defection_warehouse.sample.next_day import add_day
from defection_warehouse.sources.csv_records import records
from tests.test_quality_faults import World, _settings

pytestmark = pytest.mark.slow

END = date(2026, 3, 31)


def rows_in(path: Path) -> int:
    text = io.TextIOWrapper(io.BytesIO(path.read_bytes()), encoding="utf-8-sig",
                            errors="surrogateescape", newline="")
    return sum(1 for _ in records(text)) - 1


def export_lines(inbox: Path, name: str) -> tuple[str, list[str]]:
    """The header and records of an export, each record as CSV text of its own."""
    def text(fields: list[str]) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(fields)
        return out.getvalue()

    with (inbox / name).open(newline="") as f:
        header, *body = [text(r) for r in csv.reader(f)]
    return header, body


def write(inbox: Path, name: str, lines: list[str], prefix: bytes = b"") -> bytes:
    data = prefix + "".join(f"{line}\n" for line in lines).encode("utf-8", "surrogateescape")
    (inbox / name).write_bytes(data)
    return data


def late_date(inbox: Path) -> date:
    """A day before the first night with no response export yet."""
    day = END - timedelta(days=20)
    while (inbox / f"responses_{day.isoformat()}.csv").exists():
        day -= timedelta(days=1)
    return day


def loaded_per_file(url: str, day: date) -> dict[str, tuple[int, int, int]]:
    """file name -> (rows in, rows loaded, rows quarantined) of the day's loaded survey
    batch, with the loaded rows counted in the raw tables themselves."""
    with psycopg.connect(url) as conn:
        audit = conn.execute(
            "select source_file, rows_in, rows_quarantined from raw_meta.load_audit "
            "where source = 'survey' and logical_date = %s and status = 'loaded'",
            (day,)).fetchall()
        counts = {}
        for file, n_in, n_bad in audit:
            entity = file.split("_20", 1)[0]
            loaded = one_row(conn.execute(
                f"select count(*) from raw_survey.{entity} "  # noqa: S608
                "where _logical_date = %s and _source_file like %s",
                (day, f"%/{file}")))[0]
            counts[file] = (n_in, loaded, n_bad)
    return counts


@pytest.fixture(scope="module")
def world(module_database, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("inbox_damage")
    crm = module_database("dwtest_inbox_crm")
    warehouse = module_database("dwtest_inbox_wh")
    generate(SampleParams(customers=300, months=12, seed=31, end_date=END), root / "sample",
             crm, progress=None)
    world = World(root, crm, warehouse, _settings(root))
    world.night(END)
    return world


def test_every_damaged_file_is_accounted_for_night_after_night(world: World) -> None:
    inbox = world.sample / "survey_inbox"
    night = [END + timedelta(days=i) for i in range(1, 5)]
    for i, day in enumerate(night, 1):
        add_day(world.crm_url, world.sample, day, seed=i)

    # Night 1 passes: BOM, offset-less stamps, a non-UTF-8 byte and "" in the day's
    # export, and a late export dated weeks before the last processed night.
    name1 = f"responses_{night[0].isoformat()}.csv"
    header, body = export_lines(inbox, name1)
    assert len(body) >= 8, "the day's export is too small for this test"
    body[0] = body[0].replace("+00:00", "", 1)
    body[1] = body[1].replace("+00:00", "", 1)
    body[2] = body[2] + "\udcff"  # undecodable byte at the end of the comment
    body[3] = ",".join(next(csv.reader([body[3]]))[:5]) + ',""'
    write(inbox, name1, [header, *body], prefix=codecs.BOM_UTF8)
    late = f"responses_{late_date(inbox).isoformat()}.csv"
    write(inbox, late, [header] + [f"late_{n}," + line.split(",", 1)[1]
                                   for n, line in enumerate(body[4:8])])

    # Night 2 fails: an exit-answer export whose every row is malformed.
    broken_exit = f"exit_answers_{night[1].isoformat()}.csv"
    write(inbox, broken_exit, ["response_id,primary_reason,other_reasons,comment",
                               "a,b", "c,d", "e,f"])
    # Night 3 fails: a response export that names a column twice.
    name3 = f"responses_{night[2].isoformat()}.csv"
    good3 = (inbox / name3).read_bytes()
    h3, b3 = export_lines(inbox, name3)
    twice = [h3 + ",comment", *(line + "," for line in b3)]

    outcomes: dict[date, str | None] = {}
    files_of: dict[date, list[str]] = {night[0]: [name1, late], night[1]: [broken_exit],
                                       night[2]: [name3], night[3]: [broken_exit, name3]}
    for day in night:
        if day == night[2]:
            write(inbox, name3, twice)
        if day == night[3]:  # the operator re-delivers both files, corrected
            write(inbox, broken_exit, ["response_id,primary_reason,other_reasons,comment"])
            (inbox / name3).write_bytes(good3)
        before = world.published()
        try:
            world.night(day)
            outcomes[day] = None
        except StepFailed as failed:
            outcomes[day] = str(failed)
        after = world.published()
        if outcomes[day] is None:
            assert after != before, f"{day}: the night passed but published nothing new"
            counted = loaded_per_file(world.warehouse_url, day)
            for name in files_of[day]:
                assert name in counted, f"{day}: {name} was not landed ({counted})"
                n_in, loaded, bad = counted[name]
                assert n_in == rows_in(inbox / name) == loaded + bad, (day, name, counted)
        else:
            assert after == before, f"{day}: a failed night changed the published schema"
            assert any(name in outcomes[day] for name in files_of[day]), outcomes[day]

    assert outcomes[night[0]] is None
    assert "exit_answers" in outcomes[night[1]] and "3 of 3 rows" in outcomes[night[1]]
    assert "more than once: comment" in outcomes[night[2]]
    assert outcomes[night[3]] is None
    n_in, loaded, bad = loaded_per_file(world.warehouse_url, night[0])[name1]
    assert bad == 3  # two stamps without offset and the byte that is not UTF-8
    with psycopg.connect(world.warehouse_url) as conn:
        reasons = [r[0] for r in conn.execute(
            "select reason from raw_meta.quarantine where source_file like %s "
            "order by line_number", (f"%/{night[0].isoformat()}/%{name1}",))]
        late_rows = one_row(conn.execute(
            "select count(*) from raw_survey.responses where response_id like 'late_%'"))[0]
    assert [("no UTC offset" in r, "encoding error" in r) for r in reasons] == [
        (True, False), (True, False), (False, True)]
    assert late_rows == 4
