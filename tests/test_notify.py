"""Failure notification: the summary, its delivery to a real local webhook (configured by
env var or Airflow connection), delivery failures, and the callback inside `dag.test()`."""

from __future__ import annotations

import base64
import json
import logging
import socket
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from defection_warehouse import notify
from tests.conftest import Receiver

GATE_ERROR = ("quality gate failed: suite marts, table analytics.kpi_retention_monthly, "
              "expect_column_values_to_be_between(logo_churn_rate, 0, 1): observed 1.7")


@pytest.fixture(autouse=True)
def no_alert_settings(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DW_ALERTS", raising=False)
    monkeypatch.delenv(notify.ALERT_URL_ENV, raising=False)


@pytest.fixture
def context() -> dict[str, Any]:
    """The keys an Airflow 3 task callback context has that the summary reads."""
    start, end = datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    run_id = "scheduled__2026-11-01T00:00:00+00:00"
    ti = SimpleNamespace(dag_id="defection_nightly", task_id="quality_gate", run_id=run_id,
                         try_number=3, max_tries=2,
                         log_url="http://airflow.local/dags/defection_nightly/runs/x")
    dag_run = SimpleNamespace(dag_id="defection_nightly", run_id=run_id, logical_date=end,
                              data_interval_start=start, data_interval_end=end)
    return {"ti": ti, "task_instance": ti, "dag_run": dag_run, "run_id": run_id,
            "logical_date": end, "data_interval_start": start, "data_interval_end": end,
            "exception": RuntimeError(GATE_ERROR)}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_summary_names_the_run_task_interval_error_and_log(context) -> None:
    text = notify.failure_summary(context)
    for expected in ("defection_nightly.quality_gate", "scheduled__2026-11-01T00:00:00+00:00",
                     "2026-10-31T00:00:00+00:00 to 2026-11-01T00:00:00+00:00", "try: 3 of 3",
                     f"RuntimeError: {GATE_ERROR}", "log: http://airflow.local/dags/"):
        assert expected in text, f"{expected!r} not in\n{text}"


def test_summary_of_a_dag_level_callback() -> None:
    dag = SimpleNamespace(dag_id="defection_nightly")
    text = notify.failure_summary({"dag": dag, "run_id": "manual__1", "reason": "task_failure"})
    assert "defection_nightly" in text and "manual__1" in text and "task_failure" in text


def test_posts_to_the_env_webhook(receiver: Receiver, context, monkeypatch) -> None:
    monkeypatch.setenv(notify.ALERT_URL_ENV, receiver.url("/hook"))
    notify.on_failure_callback(context)
    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert request["path"] == "/hook"
    body = request["json"]
    assert body["text"] == notify.failure_summary(context)
    assert body["dag_id"] == "defection_nightly" and body["task_id"] == "quality_gate"
    assert body["try_number"] == 3 and GATE_ERROR in body["exception"]
    assert body["data_interval_start"] == "2026-10-31T00:00:00+00:00"


def test_the_airflow_connection_wins_over_the_env(receiver: Receiver, context,
                                                  monkeypatch) -> None:
    monkeypatch.setenv(notify.ALERT_URL_ENV, f"http://127.0.0.1:{closed_port()}/unused")
    monkeypatch.setenv("AIRFLOW_CONN_DW_ALERTS", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": receiver.port, "schema": "http",
        "login": "alerts", "password": "s3cret",
        "extra": {"endpoint": "/services/alerts", "headers": {"X-Team": "data"}}}))
    notify.on_failure_callback(context)
    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert request["path"] == "/services/alerts"
    assert request["headers"]["X-Team"] == "data"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(
        b"alerts:s3cret").decode()
    assert GATE_ERROR in request["json"]["text"]


def test_connection_given_as_a_uri(receiver: Receiver, context, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DW_ALERTS", f"http://127.0.0.1:{receiver.port}/hook")
    notify.on_failure_callback(context)
    assert [r["path"] for r in receiver.received] == ["/hook"]


def test_webhook_url_from_a_connection_with_a_full_url_host() -> None:
    url = "https://hooks.example.com/services/T0/B0/X"
    conn = SimpleNamespace(conn_type="http", host=url, schema=None, port=None, login=None,
                           password=None, extra_dejson={})
    assert notify.webhook_from_connection(conn).url == url


@pytest.mark.parametrize("failure", ["server down", "HTTP 500"])
def test_failed_delivery_is_logged_not_raised(failure: str, receiver: Receiver, context,
                                              monkeypatch, caplog) -> None:
    if failure == "server down":
        url = f"http://127.0.0.1:{closed_port()}/secret-token"
    else:
        receiver.status = 500
        url = receiver.url("/secret-token")
    monkeypatch.setenv(notify.ALERT_URL_ENV, url)
    with caplog.at_level(logging.INFO, logger=notify.__name__):
        notify.on_failure_callback(context)  # must not raise
    assert "could not deliver the failure alert" in caplog.text
    assert "secret-token" not in caplog.text  # a webhook path is often its credential


def test_without_a_webhook_the_summary_is_only_logged(context, caplog) -> None:
    with caplog.at_level(logging.INFO, logger=notify.__name__):
        notify.on_failure_callback(context)
    assert GATE_ERROR in caplog.text and "no alert webhook configured" in caplog.text


def test_a_sparse_context_does_not_raise(receiver: Receiver, monkeypatch) -> None:
    monkeypatch.setenv(notify.ALERT_URL_ENV, receiver.url())
    notify.on_failure_callback({})
    assert "unknown (see the log)" in receiver.received[0]["json"]["text"]


DAG_FILE = '''
import pendulum
from airflow.sdk import dag, task

from defection_warehouse.notify import on_failure_callback


@dag(dag_id="dw_notify_probe", schedule=None, catchup=False,
     start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def dw_notify_probe():
    @task(retries=0, on_failure_callback=on_failure_callback)
    def quality_gate():
        raise ValueError({error!r})

    quality_gate()


dw_notify_probe()
'''


def test_dag_test_runs_the_task_failure_callback(receiver: Receiver, tmp_path: Path,
                                                 monkeypatch, airflow_metadata_db) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "dw_notify_probe.py").write_text(textwrap.dedent(DAG_FILE.format(error=GATE_ERROR)))
    # dag.test() syncs the DAG's bundle to the metadata DB: a bundle of just this file.
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": "dw-notify-probe", "kwargs": {"path": str(dags), "refresh_interval": 0},
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"}]))
    monkeypatch.setenv(notify.ALERT_URL_ENV, receiver.url("/airflow"))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}
    run = bag.dags["dw_notify_probe"].test()
    assert str(run.state).endswith("failed"), run.state
    assert len(receiver.received) == 1
    body = receiver.received[0]["json"]
    assert body["dag_id"] == "dw_notify_probe" and body["task_id"] == "quality_gate"
    assert body["run_id"] == run.run_id and body["try_number"] == 1
    assert f"ValueError: {GATE_ERROR}" in body["text"]
    assert body["log_url"] and "dw_notify_probe" in body["log_url"]
