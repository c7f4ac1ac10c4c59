"""DAG integrity: imports cleanly, no cycles, tags, retries, docs, no work at import time."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

DAGS = Path(__file__).parents[1] / "dags"


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
    assert dag.get_task("dbt_base").upstream_task_ids == {"validate_raw"}
    dbt_tasks = [t for t in dag.tasks if t.task_id.startswith("dbt.")]
    assert dbt_tasks, "no dbt model tasks rendered from the manifest"
    for t in dbt_tasks:
        assert order["dbt_base"] < order[t.task_id] < order["validate_build"]
    assert any(u.startswith("dbt.") for u in dag.get_task("validate_build").upstream_task_ids)
    assert dag.get_task("publish").upstream_task_ids == {"validate_build"}
    assert "publish" in dag.get_task("report").upstream_task_ids
    # every path to publish passes both gates
    assert {"validate_raw", "validate_build"} <= _ancestors(dag, "publish")


def test_every_mart_is_a_task_of_its_own(dagbag, dbt_manifest) -> None:
    """Operators see each mart (and its tests) as one task."""
    import json

    nodes = json.loads(dbt_manifest.read_text())["nodes"].values()
    expected = {n["name"] for n in nodes if n["resource_type"] == "model"
                and n["original_file_path"].startswith("models/marts")}
    dag = dagbag.dags["defection_nightly"]
    rendered = {t.task_id.removeprefix("dbt.").removesuffix("_model_build").split(".")[0]
                for t in dag.tasks if t.task_id.startswith("dbt.")}
    assert expected and expected <= rendered


def test_every_dbt_task_builds_as_of_the_runs_date(dagbag) -> None:
    """The marts describe the run's logical date, passed the way run_dbt passes it (an
    environment variable), so every per-mart task agrees with dbt_base."""
    from defection_warehouse.transform.dbt_runner import AS_OF_ENV

    dag = dagbag.dags["defection_nightly"]
    dbt_tasks = [t for t in dag.tasks if t.task_id.startswith("dbt.")]
    assert dbt_tasks
    for t in dbt_tasks:
        assert t.env.get(AS_OF_ENV) == "{{ data_interval_start | ds }}", t.task_id
        assert "env" in t.template_fields, t.task_id


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
             "requests"}
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
