"""End to end through Airflow: `dag.test()` of defection_nightly on a generated sample.

Extract and load run for real (CRM database, local billing API, survey inbox, landing zone,
COPY into raw), then both quality gates, dbt and publish; the test reconciles the raw
tables with the landing manifests and with the sources themselves, checks that a rerun
publishes identical tables, and that a night failing its raw gate alerts the webhook and
leaves the published schema as it was.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.db import one_row, table_checksum
from defection_warehouse.publish.swap import published_checksums
from defection_warehouse.sample.billing_server import BillingServer
from defection_warehouse.sample.billing_store import BillingStore
from defection_warehouse.sources.contracts import ENTITIES
from defection_warehouse.sources.landing import LandingZone
from tests.builders import small_sample

pytestmark = pytest.mark.slow

END = date(2026, 6, 30)
KEY = "sk_test_e2e_only"


@pytest.fixture
def sample(tmp_path: Path, new_database) -> tuple[Path, str]:
    crm = new_database("dwtest_crm")
    return small_sample(tmp_path, crm, END), crm


def _state(run) -> str:
    return str(run.state).rsplit(".", 1)[-1].lower()


def run_dag(day: date, reextract: bool = False):
    """The run that processes `day` is the one triggered at the next midnight."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(Path(__file__).parents[1] / "dags")).dags["defection_nightly"]
    for t in dag.tasks:  # a failure should fail the test now, not wait for a retry
        t.retries = 0
    after = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    run = dag.test(logical_date=after, run_conf={"reextract": reextract})
    assert run.data_interval_start == after - timedelta(days=1)
    return run


def test_nightly_dag_extracts_and_loads_every_source(
        airflow_metadata_db, sample, warehouse_url: str, tmp_path: Path, monkeypatch,
        receiver) -> None:
    sample_dir, crm = sample
    landing = tmp_path / "landing"
    with BillingServer(sample_dir / "billing.sqlite", KEY) as server:
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_url.replace(
            "postgresql://", "postgres://"))
        monkeypatch.setenv("AIRFLOW_CONN_CRM_DB", crm.replace("postgresql://", "postgres://"))
        monkeypatch.setenv("AIRFLOW_CONN_BILLING_API", json.dumps(
            {"conn_type": "http", "host": server.url, "password": KEY}))
        monkeypatch.setenv("LANDING_URL", str(landing))
        monkeypatch.setenv("SURVEY_INBOX", str(sample_dir / "survey_inbox"))
        monkeypatch.setenv("DW_ALERT_WEBHOOK_URL", receiver.url())
        run = run_dag(END)
        assert _state(run) == "success", run.state
        with psycopg.connect(warehouse_url) as conn:
            first = {e.raw_table: table_checksum(conn, e.raw_table) for e in ENTITIES}
        published = published_checksums(warehouse_url, "analytics")
        requests_before = server.request_count
        rerun = run_dag(END)  # idempotent: landing reused, batch replaced
        assert _state(rerun) == "success", rerun.state
        assert server.request_count == requests_before
        # the same day loaded and published twice: identical tables
        with psycopg.connect(warehouse_url) as conn:
            second = {e.raw_table: table_checksum(conn, e.raw_table) for e in ENTITIES}
        assert published_checksums(warehouse_url, "analytics") == published
        assert receiver.received == []

        # Twelve days later nothing new has arrived: the raw gate fails the run before
        # dbt, the webhook gets the summary, the published tables stay as they were.
        stale = run_dag(END + timedelta(days=12))
        assert _state(stale) == "failed", stale.state
        states = {ti.task_id: str(ti.state).rsplit(".", 1)[-1].lower()
                  for ti in stale.get_task_instances()}
        assert states["validate_raw"] == "failed", states
        assert states["publish"] != "success", states
        assert published_checksums(warehouse_url, "analytics") == published
        alerts = [r["json"] for r in receiver.received]
        assert alerts and "validate_raw" in alerts[0]["text"], alerts
        assert "fresh" in alerts[0]["text"].lower(), alerts[0]["text"]

    zone = LandingZone(str(landing))
    with psycopg.connect(warehouse_url) as conn:
        quarantined = one_row(conn.execute("select count(*) from raw_meta.quarantine"))[0]
        audit = conn.execute("select count(distinct load_id), min(status), max(status) "
                             "from raw_meta.load_audit").fetchone()
        published_runs = conn.execute(
            "select count(*), count(distinct run_id), min(as_of_date), max(as_of_date) "
            "from dw_meta.publish_log").fetchone()
        history = conn.execute("select count(*), count(distinct as_of_date) "
                               "from analytics.kpi_history").fetchone()
    assert second == first
    assert quarantined == 0
    # 3 sources x 3 runs, less the stale day's survey batch: no export, no file to audit
    assert audit == (8, "loaded", "loaded")
    assert published_runs == (2, 2, END, END)
    assert history[0] > 0 and history[1] == 1

    for source in ("crm", "billing", "survey"):
        manifest = zone.batch(source, END).manifest()
        for e in (e for e in ENTITIES if e.source == source):
            expected = sum(f.rows for f in manifest.files_for(e.name))
            assert first[e.raw_table][0] == expected, e.raw_table
    # Raw equals the sources: every CRM row and every billing object arrived once.
    with psycopg.connect(crm) as src, psycopg.connect(warehouse_url) as wh:
        for e in (e for e in ENTITIES if e.source == "crm"):
            n = one_row(src.execute(f"select count(*) from crm.{e.name}"))[0]
            assert first[e.raw_table][0] == n > 0, e.raw_table
        with BillingStore(sample_dir / "billing.sqlite") as store:
            for obj, table in (("customer", "customers"), ("subscription", "subscriptions"),
                               ("invoice", "invoices"), ("charge", "charges")):
                ids = wh.execute(f"select count(distinct {table[:-1]}_id), count(*) "
                                 f"from raw_billing.{table} where _logical_date = %s",
                                 (END,)).fetchone()
                assert ids == (store.count(obj), store.count(obj)), table
