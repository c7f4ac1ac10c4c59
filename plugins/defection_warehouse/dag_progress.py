"""Run `airflow dags test` quietly: Airflow's own log goes to a file, and the terminal gets
one line per task as it finishes (state and duration), read from Airflow's metadata
database. The dbt group's tasks (one per model, seed and test) are summed up in one line.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")
GROUP_PREFIX = "dbt."


@dataclass
class _Progress:
    dbt_total: int = 0
    dbt_states: Counter[str] = field(default_factory=Counter)
    dbt_seconds: float = 0.0
    shown: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def _run_ids(db: Path, dag_id: str) -> set[str]:
    """The runs the database holds (`dags test` replaces the run of the same date, and
    SQLite may give the new one the old one's id, so runs are told apart by run_id)."""
    if not db.exists():
        return set()
    with _connect(db) as conn:
        return {r for (r,) in conn.execute("select run_id from dag_run where dag_id = ?",
                                            (dag_id,))}


def _poll(db: Path, dag_id: str, earlier: set[str], progress: _Progress,
          say: Callable[[str], None]) -> None:
    """Print the tasks that finished since the last poll."""
    try:
        with _connect(db) as conn:
            found = conn.execute(
                "select run_id, task_id, state, coalesce(duration, 0) from task_instance "
                "where dag_id = ? order by coalesce(end_date, updated_at)",
                (dag_id,)).fetchall()
    except sqlite3.OperationalError:  # Airflow is writing: read again at the next poll
        return
    rows = [(task_id, state, seconds) for run_id, task_id, state, seconds in found
            if run_id not in earlier]
    progress.dbt_total = sum(1 for task_id, _, _ in rows if task_id.startswith(GROUP_PREFIX))
    for task_id, state, seconds in rows:
        if state not in FINISHED or task_id in progress.shown:
            continue
        progress.shown.add(task_id)
        if state in ("failed", "upstream_failed"):
            progress.failed.append(task_id)
        if task_id.startswith(GROUP_PREFIX):
            progress.dbt_states[state] += 1
            progress.dbt_seconds = max(progress.dbt_seconds, seconds)
            done = sum(progress.dbt_states.values())
            if done == progress.dbt_total:
                states = ", ".join(f"{n} {s}" for s, n in sorted(progress.dbt_states.items()))
                say(f"  {'dbt (group)':<28} {done} tasks: {states}; longest "
                    f"{progress.dbt_seconds:.1f}s")
            continue
        say(f"  {task_id:<28} {state:<16} {seconds:6.1f}s")


def run_quietly(command: list[str], env: dict[str, str], dag_id: str, log_file: Path,
                say: Callable[[str], None]) -> int:
    """Run `command` (an `airflow dags test`) with its output in `log_file`, printing each
    task as it finishes; returns the exit code."""
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    earlier = _run_ids(db, dag_id)
    progress = _Progress()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                text=True)
        while proc.poll() is None:
            time.sleep(1)
            _poll(db, dag_id, earlier, progress, say)
        _poll(db, dag_id, earlier, progress, say)
    if proc.returncode != 0 or progress.failed:
        print(f"failed tasks: {', '.join(progress.failed) or 'none recorded'}; the last "
              f"lines of Airflow's log ({log_file}):", file=sys.stderr)
        print("".join(log_file.read_text(errors="replace").splitlines(True)[-40:]),
              file=sys.stderr)
    return proc.returncode
