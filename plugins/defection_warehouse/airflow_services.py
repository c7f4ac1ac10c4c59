"""Airflow's components as local processes, and a client for Airflow's REST API.

`dw airflow` (the UI on this machine), `dw celery-run` (a distributed run) and their tests
start the api-server, scheduler, dag-processor and triggerer here, plus Celery workers
when the executor is Celery, the way docker-compose.yml runs them in containers: one
shared JWT secret, the metadata database on a PostgreSQL server, each component's output
in a log file of its own. They run the nightly DAG for real: each task in a process of its
own, the dbt sensors deferred to the triggerer.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

ADMIN_USER = "admin"
# Airflow records the name of the host that ran a task; two workers on one machine would
# share it, so each gets a name of its own (see `hostname`).
WORKER_NAME_ENV = "DW_WORKER_NAME"
TERMINAL_STATES = {"success", "failed"}


def hostname() -> str:
    """The host name Airflow records for a task ([core] hostname_callable): DW_WORKER_NAME
    where set, else the machine's FQDN, Airflow's default."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


def airflow_executable() -> str:
    """The `airflow` beside the Python that runs this (a virtualenv's bin/, which need not
    be on PATH)."""
    return str(Path(sys.executable).with_name("airflow"))


class AirflowError(RuntimeError):
    """Airflow failed us: a command or component exited, its REST API refused a call, or
    it did not get somewhere in time. The message says what and where the logs are; the
    CLI prints it without a traceback."""


def migrate_metadata_db(env: dict[str, str] | None = None, *,
                        log_file: Path | None = None) -> None:
    """`airflow db migrate` on the metadata database that `env` (default: this process's
    environment) points at; its output is also written to `log_file` when given."""
    proc = subprocess.run([airflow_executable(), "db", "migrate"], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if log_file is not None:
        log_file.write_text(proc.stdout)
    if proc.returncode != 0:
        raise AirflowError(f"airflow db migrate failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-4000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def logical_date_for(day: date) -> datetime:
    """The nightly DAG's run for day D is the one at D+1 00:00 UTC (interval [D, D+1))."""
    return datetime.combine(day + timedelta(days=1), clock(0), tzinfo=UTC)


@dataclass
class ServicesConfig:
    """What the components share. `metadata_url` is a SQLAlchemy URL of Airflow's metadata
    database (PostgreSQL: the scheduler and the workers write to it at once)."""

    home: Path
    metadata_url: str
    port: int = 8080
    executor: str = "LocalExecutor"
    workers: int = 0
    worker_concurrency: int = 2
    broker_url: str = "redis://127.0.0.1:6379/0"
    # LocalExecutor: how many tasks run at once
    parallelism: int = 4
    # Runs on the DAG's schedule once it is unpaused; off, only triggered runs and
    # backfills run (a sample's nights are in the past: the scheduled run of yesterday
    # would find no fresh data)
    schedule: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "services"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"


def services_env(base: dict[str, str], config: ServicesConfig) -> dict[str, str]:
    """The environment every component gets: `base` (the project's connections and
    paths, see cli.airflow_env) plus what makes them one deployment."""
    secrets_file = config.home / "secrets.json"
    if not secrets_file.exists():  # generated once per home, kept across restarts
        secrets_file.write_text(json.dumps({"jwt": secrets.token_hex(32),
                                            "api": secrets.token_hex(32)}))
        secrets_file.chmod(0o600)
    shared = json.loads(secrets_file.read_text())
    env = dict(base)
    env.update({
        "AIRFLOW_HOME": str(config.home),
        "AIRFLOW__CORE__EXECUTOR": config.executor,
        "AIRFLOW__CORE__PARALLELISM": str(config.parallelism),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": config.metadata_url,
        # the same secrets in every component: the api-server checks the tokens the
        # scheduler signs for the tasks (else "Invalid auth token: Signature verification
        # failed") and the workers check the api-server's log requests
        "AIRFLOW__API_AUTH__JWT_SECRET": shared["jwt"],
        "AIRFLOW__API__SECRET_KEY": shared["api"],
        "AIRFLOW__API__PORT": str(config.port),
        "AIRFLOW__API__BASE_URL": config.url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{config.url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(config.passwords_file),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.hostname",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # the dbt sensors wait in the triggerer, as in docker-compose.yml
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(config.home / "logs"),
        # a scheduler that finds a new DAG file within seconds, not minutes
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(config.schedule),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
    })
    if config.executor == "CeleryExecutor":
        backend = config.metadata_url.replace("postgresql+psycopg2://", "db+postgresql://", 1)
        env.update({"AIRFLOW__CELERY__BROKER_URL": config.broker_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": backend,
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(config.worker_concurrency)})
    return env


def admin_password(config: ServicesConfig) -> str:
    """The admin's password: written once to the simple auth manager's passwords file
    (the api-server keeps the users it finds there)."""
    path = config.passwords_file
    if path.exists():
        return str(json.loads(path.read_text())[ADMIN_USER])
    password = secrets.token_urlsafe(12)
    path.write_text(json.dumps({ADMIN_USER: password}) + "\n")
    path.chmod(0o600)
    return password


@dataclass
class Component:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)


def components(config: ServicesConfig) -> list[Component]:
    """The processes of one deployment: docker-compose.yml's services, minus the databases
    and the broker, which are servers of their own."""
    found = [Component("api-server", ["api-server", "--port", str(config.port)]),
             Component("scheduler", ["scheduler"]),
             Component("dag-processor", ["dag-processor"]),
             Component("triggerer", ["triggerer"])]
    for n in range(1, config.workers + 1):
        name = f"worker{n}"
        found.append(Component(
            name, ["celery", "worker", "--celery-hostname", f"{name}@%h",
                   "--concurrency", str(config.worker_concurrency)],
            # each worker serves its task logs on a port of its own
            {WORKER_NAME_ENV: name,
             "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}))
    return found


class AirflowServices:
    """Start the components (after migrating the metadata database), wait until the
    api-server answers and every component reports healthy, stop them all on exit."""

    def __init__(self, base_env: dict[str, str], config: ServicesConfig,
                 progress: Callable[[str], None] = log.info) -> None:
        config.home.mkdir(parents=True, exist_ok=True)
        config.log_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.password = admin_password(config)
        self.env = services_env(base_env, config)
        self.progress = progress
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def migrate(self) -> None:
        self.progress("migrating Airflow's metadata database")
        migrate_metadata_db(self.env, log_file=self.config.log_dir / "db-migrate.log")

    def start(self) -> AirflowServices:
        self.migrate()
        for component in components(self.config):
            out = self.config.log_dir / f"{component.name}.log"
            with out.open("ab") as sink:
                self.processes[component.name] = subprocess.Popen(
                    [airflow_executable(), *component.args], env={**self.env, **component.env},
                    stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
            self.progress(f"started {component.name} (pid "
                          f"{self.processes[component.name].pid}, log {out})")
        self.wait_healthy()
        return self

    def check_running(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise AirflowError(f"Airflow's {name} exited with {proc.returncode}; see "
                                   f"{self.config.log_dir / (name + '.log')}")

    def wait_healthy(self, timeout: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        wanted = ("metadatabase", "scheduler", "dag_processor", "triggerer")
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.check_running()
            try:
                status = httpx.get(f"{self.config.url}/api/v2/monitor/health",
                                   timeout=5).json()
            except httpx.HTTPError:
                status = {}
            if all(status.get(part, {}).get("status") == "healthy" for part in wanted):
                self.progress(f"Airflow is up at {self.config.url}")
                return
            time.sleep(2)
        raise AirflowError(f"Airflow's components were not healthy after {timeout:.0f}s "
                           f"(last health report: {status}); logs in {self.config.log_dir}")

    def client(self) -> AirflowClient:
        return AirflowClient(self.config.url, ADMIN_USER, self.password, self.check_running)

    def stop(self) -> None:
        for proc in reversed(self.processes.values()):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.processes.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log.warning("Airflow's %s did not stop in 30s; killing it", name)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()

    def __enter__(self) -> AirflowServices:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class AirflowClient:
    """The few calls of Airflow's REST API (v2) the project makes, as the admin user."""

    def __init__(self, url: str, user: str, password: str,
                 still_running: Callable[[], None] = lambda: None) -> None:
        import httpx

        token = httpx.post(f"{url}/auth/token", json={"username": user, "password": password},
                           timeout=30)
        token.raise_for_status()
        self.http = httpx.Client(base_url=f"{url}/api/v2", timeout=60, headers={
            "Authorization": f"Bearer {token.json()['access_token']}"})
        self.still_running = still_running

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.is_error:
            raise AirflowError(f"{method} {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed `dag_id`, then unpause it."""
        deadline = time.monotonic() + timeout
        while self.http.get(f"/dags/{dag_id}").status_code == 404:
            self.still_running()
            if time.monotonic() > deadline:
                raise AirflowError(f"the DAG {dag_id} was not parsed within {timeout:.0f}s; "
                                   "see the dag-processor's log")
            time.sleep(2)
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, day: date, conf: dict[str, Any] | None = None) -> str:
        """Trigger the nightly run for `day`; returns its run id. An earlier run of the
        same night is deleted first (a logical date has one run)."""
        logical_date = logical_date_for(day)
        for earlier in self.runs(dag_id, logical_date_gte=logical_date.isoformat(),
                                 logical_date_lte=logical_date.isoformat()):
            log.info("deleting the earlier run %s of %s", earlier["dag_run_id"], day)
            response = self.http.delete(f"/dags/{dag_id}/dagRuns/{earlier['dag_run_id']}")
            if response.is_error:
                raise AirflowError(f"cannot delete the earlier run {earlier['dag_run_id']}: "
                                   f"HTTP {response.status_code} {response.text}")
        run = self._call("POST", f"/dags/{dag_id}/dagRuns", json={
            "logical_date": logical_date.isoformat(), "conf": conf or {}})
        return str(run["dag_run_id"])

    def runs(self, dag_id: str, **filters: Any) -> list[dict[str, Any]]:
        found = self._call("GET", f"/dags/{dag_id}/dagRuns",
                           params={"limit": 100, "order_by": "logical_date", **filters})
        return list(found["dag_runs"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """All of a run's task instances (the API gives at most 100 a page)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                              params={"limit": 100, "offset": len(found)})
            found.extend(page["task_instances"])
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def wait_for_runs(self, dag_id: str, run_ids: list[str], *, timeout: float,
                      progress: Callable[[str], None] = log.info) -> dict[str, str]:
        """Wait until every run in `run_ids` has finished; returns each one's state and
        reports each run's progress (tasks done of all) as it changes."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            self.still_running()
            states = {r: self.run(dag_id, r)["state"] for r in run_ids}
            open_runs = [r for r, s in states.items() if s not in TERMINAL_STATES]
            if not open_runs:
                return states
            current = open_runs[0]
            tis = self.task_instances(dag_id, current)
            done = sum(ti["state"] in ("success", "skipped", "failed", "upstream_failed")
                       for ti in tis)
            line = (f"{current}: {done}/{len(tis)} tasks done "
                    f"({len(run_ids) - len(open_runs)}/{len(run_ids)} runs finished)")
            if line != last:
                progress(line)
                last = line
            if time.monotonic() > deadline:
                raise AirflowError(f"runs still open after {timeout:.0f}s: {open_runs}")
            time.sleep(5)


def tasks_by_host(tis: list[dict[str, Any]]) -> dict[str, int]:
    """How many of a run's task instances each host (worker) ran."""
    counts: dict[str, int] = {}
    for ti in tis:
        if ti.get("hostname"):
            counts[ti["hostname"]] = counts.get(ti["hostname"], 0) + 1
    return dict(sorted(counts.items()))


def metadata_database(warehouse_url: str, flavour: str) -> str:
    """The name of Airflow's metadata database beside a warehouse: one per warehouse and
    executor flavour (`<warehouse>_airflow_local`, `<warehouse>_airflow_celery`), so that
    two warehouses on one server keep their runs apart."""
    return f"{urlsplit(warehouse_url).path.lstrip('/')}_airflow_{flavour}"


def metadata_url(warehouse_url: str, flavour: str) -> str:
    """A SQLAlchemy URL (psycopg2, Airflow's driver) of the metadata database beside the
    warehouse of the libpq URL `warehouse_url`; the database is created when missing."""
    from defection_warehouse.db import with_database
    from defection_warehouse.embedded import ensure_database

    database = metadata_database(warehouse_url, flavour)
    ensure_database(with_database(warehouse_url, "postgres"), database)
    url = with_database(warehouse_url, database)
    return "postgresql+psycopg2://" + url.split("://", 1)[1]


def broker_problem(broker_url: str) -> str | None:
    """Why Celery's broker (Redis) cannot be used, or None when it answers."""
    import redis

    try:
        redis.Redis.from_url(broker_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Celery's broker {broker_url} does not answer ({exc})"
    return None
