"""DAG integrity: imports cleanly, no cycles, tags, retries, docs, no work at import time."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

DAGS = Path(__file__).parents[1] / "dags"
PRODUCER = "dbt.dbt_producer_watcher"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "defection_nightly" in dagbag.dags


PARSE_DAGS = """
import json, os
from airflow.dag_processing.dagbag import DagBag
import defection_warehouse
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
dag = bag.dags.get("defection_nightly")
print(json.dumps({"package": defection_warehouse.__file__,
                  "errors": {path: str(error) for path, error in bag.import_errors.items()},
                  "dags": sorted(bag.dags),
                  "dbt_tasks": sum(t.task_id.startswith("dbt.") for t in dag.tasks) if dag else 0}))
"""


def test_the_dag_parses_from_an_installed_package(installed_package, dbt_manifest,
                                                  tmp_path: Path) -> None:
    """As in the Docker image: the package in site-packages, the DAG folder and the dbt
    manifest in the project folder that DW_PROJECT_DIR names, Airflow started elsewhere."""
    project = DAGS.parent
    proc = installed_package.run(PARSE_DAGS, project_dir=project, cwd=tmp_path, env={
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path / "no-plugins"),
    })
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(parsed["package"]).is_relative_to(installed_package.site)
    assert parsed["errors"] == {}
    assert parsed["dags"] == ["defection_nightly"]
    assert parsed["dbt_tasks"] > 0, "no dbt tasks rendered from the project's manifest"


def test_every_dag_is_documented_tagged_and_retried(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} has no doc_md"
        assert dag.max_active_runs == 1, f"{dag_id} may run dates concurrently"
        for t in dag.tasks:
            assert t.retries >= 2, f"{dag_id}.{t.task_id} has {t.retries} retries"
            assert t.retry_exponential_backoff, f"{dag_id}.{t.task_id} has no backoff"
            assert t.on_failure_callback, f"{dag_id}.{t.task_id} sends no failure alert"


def test_no_cycles_and_extract_precedes_load(dagbag) -> None:
    dag = dagbag.dags["defection_nightly"]
    order = {t.task_id: i for i, t in enumerate(_toposort(dag))}
    for source in ("crm", "billing", "survey"):
        assert order[f"extract_{source}"] < order[f"load_{source}"]
        assert dag.get_task(f"load_{source}").upstream_task_ids == {f"extract_{source}"}
    loads = {"load_crm", "load_billing", "load_survey"}
    # write-audit-publish: raw gate before dbt, build gate before publish
    assert dag.get_task("validate_raw").upstream_task_ids == loads
    assert dag.get_task("dbt_plan").upstream_task_ids == {"validate_raw"}
    assert dag.get_task(PRODUCER).upstream_task_ids == {"dbt_plan"}
    dbt_tasks = _dbt_tasks(dag)
    assert dbt_tasks, "no dbt tasks rendered from the manifest"
    for t in dbt_tasks:
        assert order["dbt_plan"] < order[t.task_id] < order["dbt_record"], t.task_id
    # the build is recorded only when every task of the group succeeded
    assert {t.task_id for t in dbt_tasks if not t.downstream_task_ids & {
        d.task_id for d in dbt_tasks}} <= dag.get_task("dbt_record").upstream_task_ids
    assert dag.get_task("validate_build").upstream_task_ids == {"dbt_record"}
    assert dag.get_task("publish").upstream_task_ids == {"validate_build"}
    assert "publish" in dag.get_task("report").upstream_task_ids
    # every path to publish passes both gates
    assert {"validate_raw", "validate_build"} <= _ancestors(dag, "publish")


def test_every_model_and_its_tests_are_tasks_of_one_dbt_build(dagbag, dbt_manifest) -> None:
    """Operators see every seed and model, and every model's data tests, as a task; one
    task (the producer) runs dbt, once, for all of them. The tasks come from the manifest:
    parsing the DAG calls no dbt."""
    import json

    from cosmos.constants import LoadMode
    from cosmos.operators.watcher import DbtConsumerWatcherSensor, DbtProducerWatcherOperator

    nodes = json.loads(dbt_manifest.read_text())["nodes"].values()
    dag = dagbag.dags["defection_nightly"]
    assert dag.task_group_dict["dbt"].dbt_graph.load_method == LoadMode.DBT_MANIFEST
    ids = {t.task_id for t in _dbt_tasks(dag)}
    for n in nodes:
        if n["resource_type"] in ("model", "seed"):
            kind = "run" if n["resource_type"] == "model" else "seed"
            # a tested node's tasks are a group of their own: dbt.<name>.run, .test
            assert {f"dbt.{n['name']}.{kind}", f"dbt.{n['name']}_{kind}"} & ids, n["unique_id"]
    tested = {d for n in nodes if n["resource_type"] == "test"
              for d in n["depends_on"]["nodes"] if d.startswith("model.")}
    assert tested and {f"dbt.{t.split('.')[-1]}.test" for t in tested} <= ids
    producers = [t for t in _dbt_tasks(dag) if isinstance(t, DbtProducerWatcherOperator)]
    assert [t.task_id for t in producers] == [PRODUCER]
    sensors = [t for t in _dbt_tasks(dag) if isinstance(t, DbtConsumerWatcherSensor)]
    assert len(sensors) == len(ids) - 2  # all but the producer and Cosmos's gate after it


def test_the_build_follows_the_plan_and_the_nightly_flags(dagbag) -> None:
    """The producer's --full-refresh comes from dbt_plan (the full-refresh rule), and it
    leaves the unit tests out like every nightly build."""
    from defection_warehouse.transform.dbt_runner import NIGHTLY_FLAGS

    producer = dagbag.dags["defection_nightly"].get_task(PRODUCER)
    assert producer.full_refresh == "{{ ti.xcom_pull(task_ids='dbt_plan')['full_refresh'] }}"
    assert "full_refresh" in producer.template_fields
    assert list(NIGHTLY_FLAGS) == producer.dbt_cmd_flags


def test_every_dbt_task_builds_as_of_the_runs_date(dagbag) -> None:
    """The marts describe the run's logical date, passed the way run_dbt passes it (an
    environment variable): to the build and to a sensor's retry, which runs its model."""
    from defection_warehouse.transform.dbt_runner import AS_OF_ENV

    dbt_tasks = [t for t in _dbt_tasks(dagbag.dags["defection_nightly"]) if hasattr(t, "env")]
    assert len(dbt_tasks) > 100
    for t in dbt_tasks:
        assert t.env.get(AS_OF_ENV) == "{{ data_interval_start | ds }}", t.task_id
        assert "env" in t.template_fields, t.task_id


def test_sensors_reschedule_unless_airflow_defers_by_default(dagbag) -> None:
    """`airflow dags test` runs one task at a time and runs a deferred task's trigger in
    line: a sensor that deferred before the producer ran would wait for ever. So the sensors
    defer only where Airflow is set to (a triggerer runs), and are rescheduled otherwise."""
    from cosmos.operators.watcher import DbtConsumerWatcherSensor

    from defection_warehouse.transform.cosmos_config import sensors_defer

    assert sensors_defer() is False  # the tests' Airflow, as `airflow dags test` has it
    sensors = [t for t in _dbt_tasks(dagbag.dags["defection_nightly"])
               if isinstance(t, DbtConsumerWatcherSensor)]
    assert sensors
    for t in sensors:
        assert (t.deferrable, t.mode) == (False, "reschedule"), t.task_id


def _dbt_tasks(dag) -> list:
    return [t for t in dag.tasks if t.task_id.startswith("dbt.")]


def _toposort(dag):
    """Kahn's algorithm; raises on a cycle."""
    indegree = {t.task_id: len(t.upstream_task_ids) for t in dag.tasks}
    ready = [tid for tid, n in indegree.items() if n == 0]
    out = []
    while ready:
        tid = ready.pop()
        out.append(dag.get_task(tid))
        for down in dag.get_task(tid).downstream_task_ids:
            indegree[down] -= 1
            if indegree[down] == 0:
                ready.append(down)
    assert len(out) == len(dag.tasks), "the DAG has a cycle"
    return out


def test_dag_files_do_no_work_at_import_time() -> None:
    """Top-level code may only import, define and call the @dag factory."""
    heavy = {"psycopg", "defection_warehouse.pipeline", "defection_warehouse.load.raw_loader",
             "requests", "dbt", "dbt.cli.main"}
    for path in DAGS.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                assert mod not in heavy, f"{path.name} imports {mod} at module level"


def _ancestors(dag, task_id: str) -> set[str]:
    seen: set[str] = set()
    todo = [task_id]
    while todo:
        for up in dag.get_task(todo.pop()).upstream_task_ids:
            if up not in seen:
                seen.add(up)
                todo.append(up)
    return seen


def test_report_and_digests_follow_the_publish(dagbag) -> None:
    dag = dagbag.dags["defection_nightly"]
    assert dag.get_task("leadership_report").upstream_task_ids == {"publish"}
    assert dag.get_task("send_digests").upstream_task_ids == {"leadership_report"}
    # nothing waits on them: a failed report or send never holds back the night's publish
    assert not dag.get_task("send_digests").downstream_task_ids
