"""How the nightly DAG runs dbt: one Cosmos task group in ExecutionMode.WATCHER.

One producer task runs a single `dbt build` of the whole project (seeds, staging,
intermediate, marts and their data tests; dbt's unit tests are left to CI, NIGHTLY_FLAGS);
every seed and model is a sensor task of its own that shows that node's status, and every
tested node has a sensor task for its tests. The tasks are rendered from the pre-built
manifest: no dbt call when the DAG is parsed.

Choices, each measured (docs/benchmarks.md, docs/internals.md "How dbt is run"):

* The producer runs dbt as a subprocess. Invoked in-process (dbtRunner), dbt waits inside
  its own threads while Cosmos stores four XComs per node event; run as a subprocess, dbt
  writes its JSON log to a pipe and the task stores each node's status beside it.
* The sensors defer to the triggerer where Airflow's `[operators] default_deferrable` is
  true (a deployment with a triggerer, e.g. docker-compose.yml). Otherwise they poke in
  reschedule mode: `airflow dags test` and `dag.test()` run one task at a time and run a
  deferred sensor's trigger in line, so a sensor that defers before the producer has
  started would wait for it forever; a rescheduled sensor gives the producer its turn.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from cosmos.profiles.postgres.user_pass import PostgresUserPasswordProfileMapping

from defection_warehouse.config import PROJECT_ROOT

DBT_DIR = PROJECT_ROOT / "dbt_project"
MANIFEST = DBT_DIR / "target" / "manifest.json"
# The producer task's id inside the group (Cosmos's name for it).
PRODUCER_TASK = "dbt_producer_watcher"


class WarehouseProfileMapping(PostgresUserPasswordProfileMapping):
    """The `warehouse` Airflow connection as a dbt profile; a password is optional (local
    servers with trust authentication have none)."""

    required_fields = ["host", "user", "dbname"]

    def get_dbt_value(self, name: str) -> Any:
        value = super().get_dbt_value(name)
        return "" if name == "password" and value is None else value


def manifest_path() -> Path:
    if not MANIFEST.exists():
        raise FileNotFoundError(
            f"{MANIFEST} is missing: build it with `make dbt-manifest` "
            "(dbt parse; no database needed) before Airflow parses the DAGs"
        )
    return MANIFEST


def dbt_executable() -> str:
    """The dbt installed beside the Python that runs Airflow (a virtualenv's bin/, which
    need not be on PATH), else the first on PATH (an image's user-installed scripts)."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def sensors_defer() -> bool:
    """Whether the sensors defer to the triggerer: Airflow's `[operators]
    default_deferrable` (AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE), false by default."""
    from airflow.sdk import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def nightly_dbt_group(*, group_id: str, plan_task_id: str, default_args: dict[str, Any]):
    """The DAG's dbt stage: one `dbt build` of the whole project into the build schema,
    a full refresh when the `plan_task_id` task's XCom says so (its `full_refresh`), with
    a task per seed, model and model's tests."""
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

    from defection_warehouse.config import Settings
    from defection_warehouse.transform.dbt_runner import (
        AS_OF_ENV,
        NIGHTLY_FLAGS,
        PROFILE_NAME,
        TARGET_NAME,
    )

    settings = Settings.from_env()
    defer = sensors_defer()
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(dbt_project_path=DBT_DIR, manifest_path=manifest_path()),
        profile_config=ProfileConfig(
            profile_name=PROFILE_NAME,
            target_name=TARGET_NAME,
            profile_mapping=WarehouseProfileMapping(
                conn_id="warehouse",
                # the build schema and threads as run_dbt sets them
                profile_args={"schema": settings.build_schema,
                              "threads": settings.dbt_threads}),
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            invocation_mode=InvocationMode.SUBPROCESS,
            dbt_executable_path=dbt_executable(),
            # the producer alone: `dbt run` and `dbt seed` (a sensor's retry) take
            # neither flag, and a retry gets the producer's --full-refresh from Cosmos
            setup_operator_args={
                "dbt_cmd_flags": list(NIGHTLY_FLAGS),
                "full_refresh": f"{{{{ ti.xcom_pull(task_ids='{plan_task_id}')"
                                "['full_refresh'] }}",
            },
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # a model's data tests are a sensor task after the model's (they run in the
            # producer's dbt build)
            test_behavior=TestBehavior.AFTER_EACH,
            emit_datasets=False,
        ),
        operator_args={
            "install_deps": False,
            # the as-of date as run_dbt passes it, for the build and for a sensor's retry
            "env": {AS_OF_ENV: "{{ data_interval_start | ds }}"},
            "deferrable": defer,
            "mode": "poke" if defer else "reschedule",
        },
        default_args=default_args,
    )
