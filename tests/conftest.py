"""Shared fixtures: every test that touches PostgreSQL gets its own fresh database.

The server is TEST_PG_ADMIN_URL when set, else the server of WAREHOUSE_URL, else the
embedded PostgreSQL the project starts itself (so the suite runs on a bare machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from defection_warehouse.config import PROJECT_ROOT, Settings
from defection_warehouse.db import with_database

# Airflow reads its configuration at import: point it at a throwaway home before any test
# imports it, so the suite never touches a developer's ~/airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dw-test-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "AIRFLOW__COSMOS__CACHE_DIR": str(_AIRFLOW_HOME / "cosmos"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
})


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Each test starts from the same environment: a DAG run in this process (dag.test)
    can leave variables behind (Cosmos copies a dbt task's env, the as-of date and the
    profile's DW_PG_* included, into os.environ for its OpenLineage parsing)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The DAG renders its dbt tasks from the manifest; parse once per session (no DB)."""
    from defection_warehouse.transform.dbt_runner import DBT_DIR, run_dbt

    run_dbt(["parse", "--quiet"], "postgresql://localhost/unused")
    return DBT_DIR / "target" / "manifest.json"


@pytest.fixture(scope="session")
def airflow_metadata_db() -> Path:
    """The session's Airflow metadata database (SQLite in the throwaway home), migrated
    once for every test that runs a DAG in this process."""
    from defection_warehouse.airflow_services import migrate_metadata_db

    migrate_metadata_db()
    return _AIRFLOW_HOME / "airflow.db"


@dataclass(frozen=True)
class InstalledPackage:
    """The package laid out as a regular (not editable) install lays it out: its files
    copied into a site-packages folder of their own, away from the project's dags, dbt
    project and expectations, as in the Docker image (pip install /opt/project)."""

    site: Path

    def run(self, code: str, *, project_dir: Path | None, cwd: Path,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`code` in a fresh interpreter that imports the package from `site` only, with
        DW_PROJECT_DIR set to `project_dir` (None: unset) and working directory `cwd`."""
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("DW_PROJECT_DIR", "PYTHONPATH", "DW_DATA_DIR")}
        environ.update(env or {})
        environ["PYTHONPATH"] = str(self.site)
        if project_dir is not None:
            environ["DW_PROJECT_DIR"] = str(project_dir)
        return subprocess.run([sys.executable, "-c", code], env=environ, cwd=cwd,
                              capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def installed_package(tmp_path_factory: pytest.TempPathFactory) -> InstalledPackage:
    site = tmp_path_factory.mktemp("site-packages")
    shutil.copytree(PROJECT_ROOT / "plugins" / "defection_warehouse",
                    site / "defection_warehouse",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return InstalledPackage(site)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get("TEST_PG_ADMIN_URL")
    if not url and os.environ.get("WAREHOUSE_URL"):
        url = with_database(os.environ["WAREHOUSE_URL"], "postgres")
    if not url:
        from defection_warehouse import embedded

        url = with_database(embedded.start(Settings.from_env()), "postgres")
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.execute("select 1")
    return url


class DatabaseFactory:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def __call__(self, prefix: str = "dwtest") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        self.created.append(name)
        return with_database(self.admin_url, name)

    def clone(self, template_url: str, prefix: str = "dwtest_copy") -> str:
        """A new database copied from `template_url`'s (nobody may be connected to it)."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        template = template_url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        self.created.append(name)
        return with_database(self.admin_url, name)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                    sql.Identifier(name)))


@pytest.fixture
def new_database(pg_admin_url: str) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(pg_admin_url)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="module")
def module_database(pg_admin_url: str) -> Iterator[DatabaseFactory]:
    """Databases shared by the tests of one module (expensive set-ups)."""
    factory = DatabaseFactory(pg_admin_url)
    yield factory
    factory.drop_all()


@pytest.fixture
def warehouse_url(new_database: DatabaseFactory) -> str:
    return new_database("dwtest_wh")


# A real local webhook that records what failure alerts post.
@dataclass
class Receiver:
    port: int
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append({"path": self.path, "headers": dict(self.headers),
                                   "json": json.loads(body)})
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
