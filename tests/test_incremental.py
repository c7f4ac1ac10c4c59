"""Incremental builds: a night's build equals a full rebuild of the same data.

A small business (14 months, so the newest months have a year-earlier MRR) is extracted,
loaded and built; one more day of ordinary business (and two contacts changing e-mail
addresses, one billing customer changing e-mail address and another becoming delinquent)
is loaded and built incrementally (the large staging tables only read that day's rows);
every incremental table and every mart must then equal a `--full-refresh` build of the
same raw data. Then the day is loaded again with part of its survey export
gone (a rerun that replaces a batch): the incremental build must drop those responses,
and again equal a full rebuild. Then a build three weeks later with no new data (only the
as-of date moves) and one after a day's batches arrive late (after the next day's) must
equal a full rebuild as well.
"""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.config import INTERMEDIATE_SCHEMA, STAGING_SCHEMA, Settings
from defection_warehouse.db import one_row, table_checksum
from defection_warehouse.pipeline import Endpoints, extract, load
from defection_warehouse.sample import SampleParams, generate
from defection_warehouse.sample.billing_server import BillingServer
from defection_warehouse.sample.billing_store import BillingStore
from defection_warehouse.sample.next_day import add_day
from defection_warehouse.sources.contracts import SOURCES
from defection_warehouse.transform.dbt_runner import DBT_DIR, DbtError, nightly_build, run_dbt

pytestmark = pytest.mark.slow

END = date(2026, 4, 30)
NEXT = END + timedelta(days=1)
KEY = "sk_test_incremental_only"
FULL_SNAPSHOTS = {f"{STAGING_SCHEMA}.stg_billing__{e}"
                  for e in ("customers", "subscriptions", "subscription_items")}



def _incremental_models() -> list[str]:
    """Schema-qualified names of every incremental model."""
    nodes = json.loads((DBT_DIR / "target" / "manifest.json").read_text())["nodes"].values()
    return sorted(f"{n['schema']}.{n['name']}" for n in nodes if n["resource_type"] == "model"
                  and n["config"]["materialized"] == "incremental")


def _state(url: str, settings: Settings, models: list[str]) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        tables = [*models] + [
            f"{settings.build_schema}.{t}" for (t,) in conn.execute(
                "select table_name from information_schema.tables where table_schema = %s",
                (settings.build_schema,))]
        # built_at tells the builds apart; every other column must be equal
        return {t: table_checksum(conn, t, exclude=("_loaded_at", "built_at"))
                for t in tables}


def _oids(url: str, models: list[str]) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {m: one_row(conn.execute("select %s::regclass::oid", (m,)))[0]
                for m in models}


def _last_build(url: str) -> tuple[bool, str | None]:
    """Whether the newest nightly build was a full refresh, and why."""
    with psycopg.connect(url) as conn:
        return conn.execute("select full_refresh, reason from dw_meta.dbt_builds "
                            "order by built_at desc limit 1").fetchone()


def _change_contact_emails(crm: str, url: str, day: date) -> tuple[int, tuple[int, int]]:
    """On `day`, a contact whose e-mail answered surveys moves to a new address, and the
    oldest other contact takes over the address of a second one: the responses of both
    addresses must be matched again. Returns the first contact and (taker, second)."""
    with psycopg.connect(url) as conn:
        first, second = (c for (c,) in conn.execute(
            f"select contact_id from {INTERMEDIATE_SCHEMA}.int_survey__responses_matched "
            "where contact_id is not null group by contact_id "
            "order by count(*) desc, contact_id limit 2"))
    stamp = f"{day.isoformat()} 12:00:00+00"
    with psycopg.connect(crm) as conn:
        taker = one_row(conn.execute(
            "select contact_id from crm.contacts where contact_id <> all(%s) "
            "and not coalesce(is_deleted, false) order by created_at, contact_id limit 1",
            ([first, second],)))[0]
        conn.execute("update crm.contacts set email = 'moved.' || contact_id || "
                     "'@example.test', updated_at = %s where contact_id = %s", (stamp, first))
        conn.execute("update crm.contacts set email = (select email from crm.contacts "
                     "where contact_id = %s), updated_at = %s where contact_id = %s",
                     (second, stamp, taker))
    return first, (taker, second)


def _change_billing_customers(store: Path) -> tuple[str, str]:
    """In the billing API, which lists every customer every night, one customer changes
    e-mail address and another becomes delinquent. Returns their ids."""
    with BillingStore(store) as billing:
        first, second = sorted(c["id"] for c in billing.iter_all("customer"))[:2]
        moved, flagged = billing.get("customer", first), billing.get("customer", second)
        assert moved and flagged
        billing.write([{**moved, "email": f"moved.{first}@example.test"},
                       {**flagged, "delinquent": not flagged.get("delinquent", False)}])
    return first, second


def _customer_rows(url: str) -> dict[str, tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return {r[0]: r[1:] for r in conn.execute(
            f"select customer_id, email_hash, is_delinquent "
            f"from {STAGING_SCHEMA}.stg_billing__customers")}


def _build(url: str, settings: Settings, day: date, *, full: bool = False) -> None:
    nightly_build(url, select=["--quiet"], schema=settings.build_schema, as_of=day,
                  full_refresh=full)


def test_incremental_build_equals_a_full_rebuild(tmp_path: Path, new_database,
                                                 warehouse_url: str) -> None:
    crm = new_database("dwtest_inc_crm")
    sample = tmp_path / "sample"
    generate(SampleParams(customers=200, months=14, seed=17, end_date=END), sample, crm,
             progress=None)
    settings = Settings.from_env().model_copy(update={
        "landing_url": str(tmp_path / "landing"), "survey_inbox": str(sample / "survey_inbox")})
    models = _incremental_models()
    assert {f"{STAGING_SCHEMA}.stg_crm__activities", f"{STAGING_SCHEMA}.stg_billing__invoice_lines",
            f"{STAGING_SCHEMA}.stg_survey__responses", *FULL_SNAPSHOTS} <= set(models)

    with BillingServer(sample / "billing.sqlite", KEY) as server:
        endpoints = Endpoints(warehouse_url, crm, server.url, KEY)

        def night(day: date, *, force: bool = False) -> None:
            for source in SOURCES:
                extract(source, day, endpoints, settings, force=force)
                load(source, day, endpoints, settings)

        night(END)
        _build(warehouse_url, settings, END)
        first_oids = _oids(warehouse_url, models)

        add_day(crm, sample, NEXT, seed=5)
        moved, taken_over = _change_contact_emails(crm, warehouse_url, NEXT)
        changed_customers = _change_billing_customers(sample / "billing.sqlite")
        customers_before = _customer_rows(warehouse_url)
        night(NEXT)
        _build(warehouse_url, settings, NEXT)
        assert _last_build(warehouse_url) == (False, None)
        # every customer was landed again; only the two that changed have new values
        customers_after = _customer_rows(warehouse_url)
        changed_rows = {c for c, row in customers_after.items()
                        if c in customers_before and row != customers_before[c]}
        assert changed_rows == set(changed_customers)
        email_changed, flag_changed = changed_customers
        assert customers_after[email_changed][0] != customers_before[email_changed][0]
        assert customers_after[flag_changed][1] != customers_before[flag_changed][1]
        # the survey matching followed the e-mail changes of that day
        with psycopg.connect(warehouse_url) as conn:
            matched = dict(conn.execute(
                f"select contact_id, count(*) from {INTERMEDIATE_SCHEMA}."
                "int_survey__responses_matched where contact_id = any(%s) group by 1",
                ([moved, taken_over[0], taken_over[1]],)).fetchall())
        assert moved not in matched and taken_over[1] not in matched
        assert matched.get(taken_over[0], 0) > 0
        # incremental: rows merged into the same tables, not rebuilt
        assert _oids(warehouse_url, models) == first_oids
        incremental = _state(warehouse_url, settings, models)
        _build(warehouse_url, settings, NEXT, full=True)
        assert _state(warehouse_url, settings, models) == incremental

        # The day is exported again without half of its survey responses and reloaded.
        export = sample / "survey_inbox" / f"responses_{NEXT.isoformat()}.csv"
        with export.open(newline="") as f:
            header, *rows = list(csv.reader(f))
        kept, dropped = rows[: len(rows) // 2], rows[len(rows) // 2:]
        assert dropped
        with export.open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([header, *kept])
        night(NEXT, force=True)
        _build(warehouse_url, settings, NEXT)
        full, reason = _last_build(warehouse_url)
        assert full and "loaded again" in reason, reason
        rerun = _state(warehouse_url, settings, models)
        _build(warehouse_url, settings, NEXT, full=True)
        assert _state(warehouse_url, settings, models) == rerun

        # Three weeks later with no new data: only the as-of date moves, so subscriptions
        # and invoice periods that end in between change the customers' months.
        later = NEXT + timedelta(days=21)
        _build(warehouse_url, settings, later)
        aged = _state(warehouse_url, settings, models)
        _build(warehouse_url, settings, later, full=True)
        assert _state(warehouse_url, settings, models) == aged

        # A day that arrives late: its batches are extracted on time, but loaded after
        # the next day's. The staging tables must keep the next day's versions of the
        # keys both days carry (a late batch is not newer for being loaded last).
        d2, d3 = later + timedelta(days=1), later + timedelta(days=2)
        add_day(crm, sample, d2, seed=6)
        for source in SOURCES:
            extract(source, d2, endpoints, settings)
        add_day(crm, sample, d3, seed=7)
        night(d3)
        _build(warehouse_url, settings, d3)
        for source in SOURCES:
            load(source, d2, endpoints, settings)
        _build(warehouse_url, settings, d3)
        full, reason = _last_build(warehouse_url)
        assert full and "older than a day loaded before it" in reason, reason
        late = _state(warehouse_url, settings, models)
        _build(warehouse_url, settings, d3, full=True)
        assert _state(warehouse_url, settings, models) == late
    with psycopg.connect(warehouse_url) as conn:
        gone = one_row(conn.execute(
            "select count(*) from staging.stg_survey__responses where response_id = any(%s)",
            ([r[0] for r in dropped],)))[0]
    assert gone == 0

    # An incremental table's unique index holds its key unique across every row, and
    # its key test fails on a null key.
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("insert into staging.stg_crm__tickets "
                         "select * from staging.stg_crm__tickets limit 1")
        conn.execute("update staging.stg_crm__activities set activity_id = null, "
                     "built_at = built_at + interval '1 second' where activity_id = "
                     "(select min(activity_id) from staging.stg_crm__activities)")
    with pytest.raises(DbtError, match="unique_and_not_null_stg_crm__activities_activity_id"):
        run_dbt(["test", "--quiet", "--select", "stg_crm__activities"], warehouse_url,
                schema=settings.build_schema, as_of=later)
    # The key test of a table without a unique index fails on a repeated key as well.
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("insert into intermediate.int_attribution__checkpoints "
                     "select * from intermediate.int_attribution__checkpoints limit 1")
    with pytest.raises(DbtError,
                       match="unique_and_not_null_int_attribution__checkpoints_checkpoint_id"):
        run_dbt(["test", "--quiet", "--select", "int_attribution__checkpoints"], warehouse_url,
                schema=settings.build_schema, as_of=later)
