"""Real businesses have only some sources, and CRM ids that are not numbers.

- `DW_SOURCES` declares the connected sources; billing is required.
- A billing-only night (no CRM, no survey configured) runs through the DAG: the CRM and
  survey tasks are skipped, their raw tables exist and stay empty, both gates pass, the
  marts are published, and no rule that needs CRM or survey data fires.
- CRM account ids in Salesforce style (`0015g00000AbCdEAAV`) and Telco style
  (`0002-ORFBO`) flow as text from the CRM and the billing metadata to the marts.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.config import ALL_SOURCES, Settings, parse_sources
from defection_warehouse.db import one_row
from defection_warehouse.pipeline import Endpoints, run_night
from defection_warehouse.sample.billing_server import BillingServer
from defection_warehouse.sample.billing_store import BillingStore
from defection_warehouse.sources.contracts import CRM_ENTITIES
from tests.builders import small_sample

END = date(2026, 6, 30)
KEY = "sk_test_sources_only"
# causes whose only evidence is CRM or survey data (no stated billing reason maps to them)
CRM_OR_SURVEY_ONLY = ("neglect", "oversold", "slow_resolution", "goals_unmet")


def test_sources_are_parsed_and_billing_is_required() -> None:
    assert parse_sources(None) == ALL_SOURCES
    assert parse_sources("") == ALL_SOURCES
    assert parse_sources(" Survey, billing ") == ("billing", "survey")
    with pytest.raises(ValueError, match="leaves out billing"):
        parse_sources("crm,survey")
    with pytest.raises(ValueError, match="unknown source.*hubspot"):
        parse_sources("billing,hubspot", origin="the sources param")


def test_settings_read_dw_sources(monkeypatch) -> None:
    monkeypatch.setenv("DW_SOURCES", "billing")
    settings = Settings.from_env()
    assert settings.sources == ("billing",)
    assert settings.absent_sources == ("crm", "survey")


@pytest.fixture
def sample(tmp_path: Path, new_database) -> tuple[Path, str]:
    crm = new_database("dwtest_crm")
    return small_sample(tmp_path, crm, END), crm


def _state(value) -> str:
    return str(value).rsplit(".", 1)[-1].lower()


@pytest.mark.slow
def test_billing_only_night_publishes_and_invents_no_crm_or_survey_cause(
        sample, warehouse_url: str, tmp_path: Path, monkeypatch,
        airflow_metadata_db) -> None:
    from airflow.dag_processing.dagbag import DagBag

    sample_dir, _crm = sample
    with BillingServer(sample_dir / "billing.sqlite", KEY) as server:
        monkeypatch.setenv("DW_SOURCES", "billing")
        monkeypatch.delenv("AIRFLOW_CONN_CRM_DB", raising=False)
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_url.replace(
            "postgresql://", "postgres://"))
        monkeypatch.setenv("AIRFLOW_CONN_BILLING_API", json.dumps(
            {"conn_type": "http", "host": server.url, "password": KEY}))
        monkeypatch.setenv("LANDING_URL", str(tmp_path / "landing"))
        monkeypatch.setenv("SURVEY_INBOX", str(tmp_path / "no_survey_tool"))
        dag = DagBag(dag_folder=str(Path(__file__).parents[1] / "dags")).dags[
            "defection_nightly"]
        for t in dag.tasks:
            t.retries = 0
        run = dag.test(logical_date=datetime(2026, 7, 1, tzinfo=UTC))
    states = {ti.task_id: _state(ti.state) for ti in run.get_task_instances()}
    assert _state(run.state) == "success", states
    for source in ("crm", "survey"):
        assert states[f"extract_{source}"] == "skipped", states
        assert states[f"load_{source}"] == "skipped", states
    assert states["publish"] == states["report"] == "success", states

    with psycopg.connect(warehouse_url) as conn:
        empty = {e.raw_table: one_row(conn.execute(f"select count(*) from {e.raw_table}"))[0]
                 for e in CRM_ENTITIES}
        gated = {r[0] for r in conn.execute("select distinct suite from dw_meta.gate_results")}
        published = one_row(conn.execute("select count(*) from dw_meta.publish_log"))[0]
        defections, lost = conn.execute(
            "select count(*), sum(lost_mrr) from analytics.fct_defections").fetchone()
        families = {r[0] for r in conn.execute(
            "select distinct evidence_families from analytics.fct_defections")}
        # observed evidence only from rules that read billing data
        observed = conn.execute(
            "select e.evidence_source, r.evidence_family from intermediate."
            "int_attribution__evidence e join seeds.signal_rules r "
            "on r.signal_id = e.evidence_source").fetchall()
        attributed = {r[0] for r in conn.execute(
            "select distinct cause_id from analytics.fct_defection_causes")}
        failed_adoption_without_statement = one_row(conn.execute(
            "select count(*) from analytics.fct_defection_causes c where c.cause_id = "
            "'failed_adoption' and not c.is_stated"))[0]
        at_risk = conn.execute(
            "select count(*), count(*) filter (where top_cause = any(%s)) "
            "from analytics.mart_accounts_at_risk", (list(CRM_OR_SURVEY_ONLY),)).fetchone()
        at_risk_signals = {r[0] for r in conn.execute(
            "select distinct unnest(signals) from analytics.mart_accounts_at_risk")}
        billing_signals = {r[0] for r in conn.execute(
            "select signal_id from seeds.signal_rules where evidence_family = 'billing'")}
        kpi = conn.execute(
            "select sum(defections), sum(defections_with_evidence) "
            "from analytics.kpi_retention_monthly").fetchone()
    assert set(empty.values()) == {0}, empty
    assert not any(s.startswith(("raw_crm.", "raw_survey.")) for s in gated), gated
    assert published == 1
    assert defections > 0 and lost > 0
    assert families <= {"billing", "stated,billing"}, families
    assert observed and {family for _, family in observed} == {"billing"}, observed
    assert not attributed & set(CRM_OR_SURVEY_ONLY), attributed
    assert failed_adoption_without_statement == 0
    assert at_risk[1] == 0 and at_risk_signals <= billing_signals, at_risk_signals
    assert kpi[0] == defections and 0 < kpi[1] <= kpi[0]


def _text_crm_id(numeric: int) -> str:
    """Salesforce style for even ids, Telco style (digits, dash, letters) for odd ones."""
    if numeric % 2 == 0:
        return f"0015g{numeric:010d}AAV"
    letters = "".join(chr(ord("A") + (numeric // 26 ** i) % 26) for i in range(5))
    return f"{numeric % 10000:04d}-{letters}"


def _use_text_crm_ids(crm_url: str, billing_path: Path) -> dict[str, str]:
    """Rewrite every CRM account id, in the CRM and in the billing metadata."""
    with psycopg.connect(crm_url) as conn:
        ids = [r[0] for r in conn.execute("select account_id from crm.accounts")]
        mapping = {i: _text_crm_id(int(i)) for i in ids}
        conn.execute("create temp table id_map (old text, new text)")
        with conn.cursor().copy("copy id_map from stdin") as copy:
            for old, new in mapping.items():
                copy.write_row((old, new))
        for e in CRM_ENTITIES:
            conn.execute(f"update crm.{e.name} t set account_id = m.new from id_map m "
                         "where t.account_id = m.old")
    with BillingStore(billing_path) as store:
        customers = list(store.iter_all("customer"))
        for c in customers:
            old = (c.get("metadata") or {}).get("crm_account_id")
            if old:
                c["metadata"]["crm_account_id"] = mapping[old]
        store.write(customers)
    return mapping


@pytest.mark.slow
def test_salesforce_and_telco_style_crm_ids_reach_the_marts(
        sample, warehouse_url: str, tmp_path: Path) -> None:
    sample_dir, crm = sample
    mapping = _use_text_crm_ids(crm, sample_dir / "billing.sqlite")
    assert len(set(mapping.values())) == len(mapping)
    with BillingStore(sample_dir / "billing.sqlite") as store:
        linked = sum(1 for c in store.iter_all("customer")
                     if (c.get("metadata") or {}).get("crm_account_id"))
    settings = Settings.from_env().model_copy(update={
        "landing_url": str(tmp_path / "landing"),
        "survey_inbox": str(sample_dir / "survey_inbox"), "sources": ALL_SOURCES})
    with BillingServer(sample_dir / "billing.sqlite", KEY) as server:
        done = run_night(END, Endpoints(warehouse_url, crm, server.url, KEY), settings,
                         run_id="test__text_ids")
    assert "publish" in done
    with psycopg.connect(warehouse_url) as conn:
        ids = [r[0] for r in conn.execute(
            "select crm_account_id from analytics.dim_customers "
            "where crm_account_id is not null")]
        matched = one_row(conn.execute(
            "select count(*) from intermediate.int_identity__crosswalk "
            "where match_status = 'matched'"))[0]
        crm_evidence = one_row(conn.execute(
            "select count(distinct r.evidence_family) from intermediate."
            "int_attribution__evidence e join seeds.signal_rules r "
            "on r.signal_id = e.evidence_source "
            "where r.evidence_family in ('crm_account', 'crm_activity', 'support', 'usage', "
            "'survey')"))[0]
        types = dict(conn.execute(
            "select table_name, data_type from information_schema.columns "
            "where table_schema = 'analytics' and column_name = 'crm_account_id'").fetchall())
    assert set(ids) <= set(mapping.values()) and len(ids) > 100
    assert any(len(i) == 18 and i.startswith("0015g") for i in ids)
    assert any(len(i) == 10 and i[4] == "-" for i in ids)
    assert matched == linked > 100
    # the CRM's and the survey's rules join on the text ids and still fire
    assert crm_evidence >= 4
    assert set(types.values()) == {"text"}, types
