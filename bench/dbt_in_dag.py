"""Child process of run_bench.py: the DAG's dbt stage alone, through Airflow's dag.test().

Usage: python bench/dbt_in_dag.py WAREHOUSE_URL LOGICAL_DAY
Prints a JSON line with the wall-clock seconds of the stage's run (full refresh) around
dag.test(), the span of its tasks as Airflow recorded them (first start to last end), the
dbt producer task's own seconds, and the number of tasks.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The DAG's dbt stage: the plan, the Cosmos group (task ids "dbt.*") and the record.
STAGE = {"dbt_plan", "dbt_record"}
PRODUCER = "dbt.dbt_producer_watcher"


def main() -> int:
    url, day = sys.argv[1], date.fromisoformat(sys.argv[2])
    home = Path(tempfile.mkdtemp(prefix="dw-bench-airflow-"))
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # Cosmos's own cache (partial parse, profiles) in this throwaway home: the build
        # starts from the parse state of the project, as the nightly builds left it
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_WAREHOUSE": url.replace("postgresql://", "postgres://", 1),
        "AIRFLOW_CONN_CRM_DB": "postgres://unused@127.0.0.1/unused",
        "AIRFLOW_CONN_BILLING_API": json.dumps(
            {"conn_type": "http", "host": "http://127.0.0.1:9", "password": "unused"}),
    })
    from defection_warehouse.airflow_services import migrate_metadata_db

    migrate_metadata_db()
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["defection_nightly"]
    dbt_only = dag.partial_subset(
        task_ids=[t.task_id for t in dag.tasks
                  if t.task_id in STAGE or t.task_id.startswith("dbt.")],
        include_upstream=False, include_downstream=False)
    after = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    t0 = time.perf_counter()
    run = dbt_only.test(logical_date=after, run_conf={"full_refresh": True})
    seconds = time.perf_counter() - t0
    if "success" not in str(run.state).lower():
        raise SystemExit(f"dbt stage of the DAG ended {run.state}")
    tis = run.get_task_instances()
    producer = next(ti for ti in tis if ti.task_id == PRODUCER)
    span = max(ti.end_date for ti in tis) - min(ti.start_date for ti in tis)
    print(json.dumps({"seconds": seconds, "span_seconds": span.total_seconds(),
                      "producer_seconds": (producer.end_date - producer.start_date)
                      .total_seconds(),
                      "tasks": len(dbt_only.tasks)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
