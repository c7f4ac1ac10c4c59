"""`dw demo` is quiet: one line per task as it finishes, the summary once, and where the
report, the Data Docs, Airflow's full log and the warehouse are; Airflow's own output goes
to a file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TASKS = ("extract_crm", "load_billing", "validate_raw", "dbt_plan", "dbt (group)",
         "dbt_record", "validate_build", "publish", "leadership_report", "send_digests")


def test_demo_prints_a_line_per_task_and_the_summary_once(new_database, tmp_path: Path) -> None:
    warehouse = new_database("dwtest_demo_wh")
    crm = new_database("dwtest_demo_crm")
    env = {**os.environ, "WAREHOUSE_URL": warehouse, "CRM_URL": crm,
           "DW_DATA_DIR": str(tmp_path / "data"), "SAMPLE_CUSTOMERS": "300",
           "SAMPLE_MONTHS": "14"}
    env.pop("LANDING_URL", None)
    env.pop("SURVEY_INBOX", None)
    dw = Path(sys.executable).with_name("dw")
    done = subprocess.run([str(dw), "demo"], env=env, capture_output=True, text=True,
                          timeout=900)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(lines) < 80, done.stdout
    for task in TASKS:
        shown = [line for line in lines if line.strip().startswith(task)]
        assert len(shown) == 1 and "success" in shown[0], (task, shown)
    assert sum("Retention KPIs" in line for line in lines) == 1
    log = tmp_path / "data" / "logs"
    assert any(log.glob("defection_nightly_*.log")), "Airflow's log is not in a file"
    assert "[DAG TEST]" not in done.stdout
    for where in ("leadership report:", "Data Docs:", "Airflow's full log:",
                  "the warehouse is at"):
        assert any(where in line for line in lines), where
