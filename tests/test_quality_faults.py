"""Fault injection: a bad night fails at the right step and never touches what is published.

A small generated business goes through three good nights (the first a full sync, then
two days of ordinary changes), so the raw gate has a volume history and the published
schema holds good numbers. Each case then clones that state (warehouse, CRM database,
billing store, survey inbox, landing zone), plays one more day of business with one fault
injected into a source or into the build, and runs the night with the same steps as the
DAG (`pipeline.run_night`). It asserts the step that failed, that the message names the
problem, and that the checksum of every published table is unchanged.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from defection_warehouse.config import Settings
from defection_warehouse.db import one_row
from defection_warehouse.pipeline import STEPS, Endpoints, StepFailed, run_night
from defection_warehouse.publish.swap import published_checksums
from defection_warehouse.sample import SampleParams, generate
from defection_warehouse.sample.billing_server import BillingServer
from defection_warehouse.sample.next_day import add_day

pytestmark = pytest.mark.slow

END = date(2026, 3, 31)
NEXT = END + timedelta(days=3)  # the night each case plays
KEY = "sk_test_faults_only"


@dataclass
class World:
    """Sources, landing zone and warehouse of one simulated business."""

    root: Path
    crm_url: str
    warehouse_url: str
    settings: Settings

    @property
    def sample(self) -> Path:
        return self.root / "sample"

    def night(self, day: date, steps: tuple[str, ...] = STEPS) -> dict:
        with BillingServer(self.sample / "billing.sqlite", KEY) as server:
            endpoints = Endpoints(self.warehouse_url, self.crm_url, server.url, KEY)
            return run_night(day, endpoints, self.settings, steps=steps,
                             run_id=f"test__{day.isoformat()}")

    def published(self) -> dict[str, tuple[int, str]]:
        return published_checksums(self.warehouse_url, self.settings.publish_schema)


def _settings(root: Path) -> Settings:
    return Settings.from_env().model_copy(update={
        "landing_url": str(root / "landing"),
        "survey_inbox": str(root / "sample" / "survey_inbox")})


@pytest.fixture(scope="module")
def good_history(module_database, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("faults")
    crm = module_database("dwtest_fault_crm")
    warehouse = module_database("dwtest_fault_wh")
    generate(SampleParams(customers=300, months=12, seed=31, end_date=END), root / "sample",
             crm, progress=None)
    world = World(root, crm, warehouse, _settings(root))
    world.night(END)
    for offset in (1, 2):
        day = END + timedelta(days=offset)
        add_day(crm, world.sample, day, seed=offset)
        world.night(day)
    assert world.published(), "the good nights published nothing"
    return world


@pytest.fixture
def world(good_history: World, tmp_path: Path, new_database) -> World:
    """A private copy of the good history, with the next day's ordinary business added."""
    shutil.copytree(good_history.sample, tmp_path / "sample")
    shutil.copytree(good_history.root / "landing", tmp_path / "landing")
    crm = new_database.clone(good_history.crm_url, "dwtest_fault_crm")
    warehouse = new_database.clone(good_history.warehouse_url, "dwtest_fault_wh")
    clone = World(tmp_path, crm, warehouse, _settings(tmp_path))
    add_day(crm, clone.sample, NEXT, seed=3)
    return clone


def _fails_at(world: World, day: date, step: str, *fragments: str,
              steps: tuple[str, ...] = STEPS) -> str:
    before = world.published()
    with pytest.raises(StepFailed) as failed:
        world.night(day, steps=steps)
    message = str(failed.value)
    assert failed.value.step == step, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in: {message}"
    assert world.published() == before, "a failed night changed the published schema"
    return message


def _edit_survey_export(world: World, edit: Callable[[list[str], list[list[str]]], None]
                        ) -> None:
    """Rewrite the day's survey response export (as a faulty export job would)."""
    path = world.sample / "survey_inbox" / f"responses_{NEXT.isoformat()}.csv"
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    edit(header, body)
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *body])


def _crm(world: World, statement: str) -> None:
    with psycopg.connect(world.crm_url) as conn:
        assert conn.execute(statement, {"at": f"{NEXT} 13:00+00"}).rowcount > 0


# ------------------------------------------------------------------------ source faults
def test_duplicate_primary_keys(world: World) -> None:
    _edit_survey_export(world, lambda header, body: body.append(list(body[0])))
    _fails_at(world, NEXT, "validate_raw", "raw_survey.responses", "response_id", "unique")


def test_null_keys(world: World) -> None:
    def blank_key(header: list[str], body: list[list[str]]) -> None:
        body[1][header.index("response_id")] = ""

    _edit_survey_export(world, blank_key)
    _fails_at(world, NEXT, "validate_raw", "raw_survey.responses", "response_id", "null")


def test_negative_amounts(world: World) -> None:
    _crm(world, "update crm.deals set amount = -125000, updated_at = %(at)s "
                "where deal_id = (select min(deal_id) from crm.deals)")
    _fails_at(world, NEXT, "validate_raw", "raw_crm.deals", "amount", "-125000")


def test_unknown_status_value(world: World) -> None:
    _crm(world, "update crm.deals set stage = 'won_maybe', updated_at = %(at)s "
                "where deal_id = (select max(deal_id) from crm.deals)")
    _fails_at(world, NEXT, "validate_raw", "raw_crm.deals", "stage", "won_maybe")


def test_renamed_source_column(world: World) -> None:
    def rename(header: list[str], body: list[list[str]]) -> None:
        header[header.index("score")] = "nps_score"

    _edit_survey_export(world, rename)
    _fails_at(world, NEXT, "load", f"responses_{NEXT.isoformat()}.csv", "score")


def test_data_older_than_the_freshness_limit(world: World) -> None:
    # The sources stop changing: a night ten days later has only stale data.
    _fails_at(world, NEXT + timedelta(days=10), "validate_raw", "fresh")


def test_volume_drop_to_half(world: World) -> None:
    # Billing customers are landed in full every night: half of them vanish.
    with sqlite3.connect(world.sample / "billing.sqlite") as db:
        removed = db.execute("delete from objects where type = 'customer' "
                             "and rowid % 2 = 0").rowcount
    assert removed > 100
    _fails_at(world, NEXT, "validate_raw", "raw_billing.customers", "row")


# ------------------------------------------------------------------------- build faults
def _build_then_corrupt(world: World, statement: str) -> None:
    world.night(NEXT, steps=("extract", "load", "validate_raw", "transform"))
    with psycopg.connect(world.warehouse_url) as conn:
        changed = conn.execute(sql.SQL(statement).format(
            build=sql.Identifier(world.settings.build_schema))).rowcount
    assert changed > 0


def test_corrupted_mart_weights_not_summing_to_one(world: World) -> None:
    _build_then_corrupt(world, "update {build}.fct_defection_causes set weight = weight / 2 "
                               "where defection_id = (select min(defection_id) "
                               "from {build}.fct_defection_causes)")
    _fails_at(world, NEXT, "validate_build", "fct_defection_causes", "weight",
              steps=("validate_build", "publish"))


def test_kpi_outside_its_range(world: World) -> None:
    _build_then_corrupt(world, "update {build}.kpi_retention_monthly "
                               "set logo_churn_rate = 1.7 "
                               "where month = (select max(month) "
                               "from {build}.kpi_retention_monthly)")
    _fails_at(world, NEXT, "validate_build", "kpi_retention_monthly", "logo_churn_rate",
              steps=("validate_build", "publish"))


# -------------------------------------------------------------------------- tolerated
def test_extra_source_column_is_tolerated_with_a_warning(world: World) -> None:
    def add_column(header: list[str], body: list[list[str]]) -> None:
        header.append("channel")
        for row in body:
            row.append("in_app")

    _edit_survey_export(world, add_column)
    before = world.published()
    world.night(NEXT)
    assert world.published() != before, "the night did not publish"
    with psycopg.connect(world.warehouse_url) as conn:
        warning = conn.execute(
            "select message from raw_meta.load_audit where logical_date = %s "
            "and entity = 'responses' order by finished_at desc limit 1", (NEXT,)).fetchone()
        published_as_of = one_row(conn.execute(
            "select max(as_of_date) from dw_meta.publish_log"))[0]
    assert warning and "channel" in warning[0]
    assert published_as_of == NEXT


def test_no_plaintext_email_is_published(good_history: World) -> None:
    """Emails and names are pseudonymised before the marts: no raw email value appears in
    any text column of any published table."""
    schema = good_history.settings.publish_schema
    with psycopg.connect(good_history.warehouse_url) as conn:
        emails = {r[0].strip().lower() for r in conn.execute(
            "select email from raw_crm.contacts where email like '%%@%%' "
            "union select email from raw_billing.customers where email like '%%@%%' "
            "union select respondent_email from raw_survey.responses "
            "where respondent_email like '%%@%%'")}
        assert len(emails) > 100
        columns = conn.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = %s and data_type in ('text', 'character varying')",
            (schema,)).fetchall()
        assert columns
        for table, column in columns:
            values = conn.execute(sql.SQL("select distinct lower(trim({}::text)) from {}").format(
                sql.Identifier(column), sql.Identifier(schema, table)))
            leaked = {v for (v,) in values if v in emails}
            assert not leaked, f"{schema}.{table}.{column} holds plaintext emails"
