"""Airflow's components as separate processes, as a deployment runs them.

`dw airflow` (make airflow) starts the api-server, scheduler, dag-processor and triggerer;
a night triggered through Airflow's REST API runs to success. `dw celery-run` (make
celery-run) runs a night on the CeleryExecutor with two workers over the Redis on
loopback: both workers run tasks, and the published marts equal those of a `dag.test()`
run (`dw run`) of the same night.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from defection_warehouse.airflow_services import (
    AirflowClient,
    broker_problem,
    free_port,
    metadata_database,
    tasks_by_host,
)
from defection_warehouse.publish.swap import published_checksums
from tests.builders import dw_env, finish_dw, run_dw, start_dw, two_warehouses

pytestmark = pytest.mark.slow

DAG_ID = "defection_nightly"
NIGHT = date(2026, 10, 31)
BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
READY = re.compile(r"Airflow is ready at (\S+) \(user (\S+), password (\S+)\)")


def wait_for_ready(proc: subprocess.Popen[str], timeout: float = 600) -> re.Match[str]:
    """Read `dw airflow`'s output until it says where Airflow is."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    for line in proc.stdout:
        seen.append(line)
        found = READY.search(line)
        if found:
            return found
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("dw airflow did not get ready:\n" + "".join(seen[-60:]))


def test_dw_airflow_runs_a_night_triggered_through_the_rest_api(new_database,
                                                               tmp_path: Path) -> None:
    env = dw_env(tmp_path / "data", new_database("dwtest_ui_wh"),
                 new_database("dwtest_ui_crm"))
    new_database.created.append(metadata_database(env["WAREHOUSE_URL"], "local"))
    port = free_port()
    dw = Path(sys.executable).with_name("dw")
    proc = subprocess.Popen([str(dw), "airflow", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ready = wait_for_ready(proc)
        url, user, password = ready.groups()
        assert url == f"http://127.0.0.1:{port}"
        client = AirflowClient(url, user, password)
        client.wait_for_dag(DAG_ID)
        run_id = client.trigger(DAG_ID, NIGHT)
        states = client.wait_for_runs(DAG_ID, [run_id], timeout=1800, progress=print)
        assert states == {run_id: "success"}, client.task_instances(DAG_ID, run_id)
        run = client.run(DAG_ID, run_id)
        assert run["data_interval_start"].startswith(NIGHT.isoformat())
        # the schedule is off: unpausing the DAG added no run of its own
        assert [r["dag_run_id"] for r in client.runs(DAG_ID)] == [run_id]
        tis = client.task_instances(DAG_ID, run_id)
        assert len(tis) > 100 and {ti["state"] for ti in tis} == {"success"}, \
            {ti["task_id"]: ti["state"] for ti in tis if ti["state"] != "success"}
        published = published_checksums(env["WAREHOUSE_URL"], "analytics")
        assert published["kpi_retention_monthly"][0] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert proc.returncode == 0
    with pytest.raises(OSError):  # the api-server stopped with it
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.celery
def test_celery_run_spreads_a_night_over_two_workers(new_database, tmp_path: Path) -> None:
    problem = broker_problem(BROKER)
    if problem:
        pytest.skip(problem)
    reference, celery = two_warehouses(tmp_path, new_database, "dagtest", "celery")
    new_database.created.append(metadata_database(celery["WAREHOUSE_URL"], "celery"))
    dag_test = start_dw(["run", NIGHT.isoformat()], reference)  # meanwhile

    out = run_dw(["celery-run", NIGHT.isoformat(), "--workers", "2", "--broker", BROKER,
                  "--port", str(free_port())], celery)
    finish_dw(dag_test)
    print(out)  # the log shows which worker ran how many tasks
    hosts = dict(re.findall(r"^\[[\d:]+\]\s+(worker\d): (\d+) tasks$", out, re.MULTILINE))
    assert set(hosts) == {"worker1", "worker2"}, out[-3000:]
    assert all(int(n) > 0 for n in hosts.values()), hosts
    # one night only: each raw table holds the one batch the run loaded
    assert all(line.split()[-1] == line.split()[-2] for line in out.splitlines()
               if line.strip().startswith("raw_")), out
    assert published_checksums(celery["WAREHOUSE_URL"], "analytics") == \
        published_checksums(reference["WAREHOUSE_URL"], "analytics")


def test_tasks_by_host_counts_each_workers_tasks() -> None:
    tis = [{"hostname": "worker2"}, {"hostname": "worker1"}, {"hostname": "worker2"},
           {"hostname": ""}]
    assert tasks_by_host(tis) == {"worker1": 1, "worker2": 2}
