"""The DAG's dbt stage through Airflow (`dag.test()` of dbt_plan, the Cosmos group and
dbt_record) on a loaded night whose billing disputes lost a column: the one `dbt build`
fails on that model, its own task fails and what depends on it does not run, while the
rest of the project is built and each of its tasks succeeds; the build is not recorded,
so the next night's rule still sees no successful build."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.config import Settings
from defection_warehouse.db import one_row
from defection_warehouse.pipeline import Endpoints, extract, load
from defection_warehouse.sample.billing_server import BillingServer
from defection_warehouse.sources.contracts import SOURCES
from defection_warehouse.transform.cosmos_config import MANIFEST, PRODUCER_TASK
from tests.builders import small_sample

pytestmark = pytest.mark.slow

END = date(2026, 6, 30)
KEY = "sk_test_dbt_stage_only"
BROKEN = "model.defection_warehouse.stg_billing__disputes"


def _state(value) -> str:
    return str(value).rsplit(".", 1)[-1].lower()


def _task_of(ids: set[str], unique_id: str, kind: str = "run") -> str:
    """A node's task: dbt.<name>.run when the node has tests (a group), else dbt.<name>_run."""
    name = unique_id.split(".")[-1]
    found = {f"dbt.{name}.{kind}", f"dbt.{name}_{kind}"} & ids
    assert len(found) == 1, (unique_id, kind)
    return found.pop()


def _children(nodes: dict, unique_id: str) -> set[str]:
    """Every model built from `unique_id`, directly or not."""
    found: set[str] = set()
    todo = [unique_id]
    while todo:
        parent = todo.pop()
        for uid, node in nodes.items():
            if uid.startswith("model.") and parent in node["depends_on"]["nodes"] \
                    and uid not in found:
                found.add(uid)
                todo.append(uid)
    return found


def test_a_failing_model_fails_its_task_and_the_build_is_not_recorded(
        tmp_path: Path, new_database, warehouse_url: str, monkeypatch,
        airflow_metadata_db) -> None:
    from airflow.dag_processing.dagbag import DagBag

    crm = new_database("dwtest_stage_crm")
    sample = small_sample(tmp_path, crm, END)
    settings = Settings.from_env().model_copy(update={
        "landing_url": str(tmp_path / "landing"), "survey_inbox": str(sample / "survey_inbox")})
    with BillingServer(sample / "billing.sqlite", KEY) as server:
        endpoints = Endpoints(warehouse_url, crm, server.url, KEY)
        for source in SOURCES:
            extract(source, END, endpoints, settings)
            load(source, END, endpoints, settings)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("alter table raw_billing.disputes rename column reason to reason_gone")

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE",
                       warehouse_url.replace("postgresql://", "postgres://", 1))
    dag = DagBag(dag_folder=str(Path(__file__).parents[1] / "dags")).dags["defection_nightly"]
    stage = dag.partial_subset(
        task_ids=[t.task_id for t in dag.tasks
                  if t.task_id in ("dbt_plan", "dbt_record") or t.task_id.startswith("dbt.")],
        include_upstream=False, include_downstream=False)
    for t in stage.tasks:  # fail now: a sensor's retry would run its model again
        t.retries = 0
    after = datetime(END.year, END.month, END.day, tzinfo=UTC) + timedelta(days=1)
    run = stage.test(logical_date=after)

    states = {ti.task_id: _state(ti.state) for ti in run.get_task_instances()}
    ids = set(states)
    nodes = json.loads(MANIFEST.read_text())["nodes"]
    assert _state(run.state) == "failed", states
    assert states[f"dbt.{PRODUCER_TASK}"] == "failed"
    assert states[_task_of(ids, BROKEN)] == "failed"
    downstream = _children(nodes, BROKEN)
    assert downstream
    for uid in downstream:
        assert states[_task_of(ids, uid)] in ("upstream_failed", "failed"), uid
    # a model that does not read the disputes was built, and its tests passed
    contacts = "model.defection_warehouse.stg_crm__contacts"
    assert contacts not in downstream
    assert states[_task_of(ids, contacts)] == "success"
    assert states[_task_of(ids, contacts, "test")] == "success"
    assert states["dbt_plan"] == "success"
    assert states["dbt_record"] == "upstream_failed"
    with psycopg.connect(warehouse_url) as conn:
        assert one_row(conn.execute("select count(*) from dw_meta.dbt_builds"))[0] == 0
        built = one_row(conn.execute("select count(*) from staging.stg_crm__contacts"))[0]
    assert built > 0
