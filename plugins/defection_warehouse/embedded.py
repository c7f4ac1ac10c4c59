"""An embedded PostgreSQL for machines with no warehouse configured.

Uses the PostgreSQL 16 build that ships inside the `pgserver` wheel, but listens on TCP
(127.0.0.1, port EMBEDDED_PG_PORT, or a free port when another server holds it) rather
than a socket only, so Airflow connections and dbt profiles see an ordinary host and
port. The server keeps running between commands so analysts can query the demo
warehouse; `python -m defection_warehouse.embedded stop` ends it.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import stat
import subprocess
import sys
import warnings
from pathlib import Path

from defection_warehouse.config import Settings

SYSTEM_USER = "pgserver"  # postgres refuses to run as root; pgserver's convention


def _bin(name: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> str | None:
    return SYSTEM_USER if platform.system() != "Windows" and os.geteuid() == 0 else None


def _prepare_root_permissions(pgdata: Path) -> None:
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None, f"user {SYSTEM_USER} could not be created"
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def _pg_ctl(pgdata: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_bin("pg_ctl"), "-D", str(pgdata), *args],
        user=_run_as(), check=check, capture_output=True, text=True, timeout=120,
    )


def is_running(pgdata: Path) -> bool:
    if not (pgdata / "PG_VERSION").exists():
        return False
    return _pg_ctl(pgdata, "status", check=False).returncode == 0


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _choose_port(settings: Settings, pgdata: Path) -> int:
    """The port this data directory uses: EMBEDDED_PG_PORT when set explicitly, else the
    one it used before, else the default or, when another server holds that, a free one."""
    saved = pgdata.parent / "pgdata.port"
    pid_file = pgdata / "postmaster.pid"
    if is_running(pgdata) and pid_file.exists():
        port = int(pid_file.read_text().splitlines()[3])  # line 4 of postmaster.pid
    elif os.environ.get("EMBEDDED_PG_PORT"):
        port = settings.embedded_pg_port
    elif saved.exists():
        port = int(saved.read_text().strip())
    elif _port_free(settings.embedded_pg_port):
        port = settings.embedded_pg_port
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    saved.write_text(f"{port}\n")
    return port


def start(settings: Settings, database: str = "warehouse") -> str:
    """Initialise (first time) and start the embedded server; return the warehouse URL."""
    pgdata = settings.data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    port = _choose_port(settings, pgdata)
    _bin("pg_ctl")  # imports pgserver quietly before anything else touches it
    if _run_as():
        _prepare_root_permissions(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [_bin("initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=utf8",
             "--username=postgres", "--no-instructions"],
            user=_run_as(), check=True, capture_output=True, text=True, timeout=300,
        )
    if not is_running(pgdata):
        opts = (f"-h 127.0.0.1 -p {port} -c unix_socket_directories='' "
                "-c max_connections=100 -c shared_buffers=256MB -c synchronous_commit=off")
        result = _pg_ctl(pgdata, "-w", "-t", "60", "-o", opts,
                         "-l", str(pgdata / "server.log"), "start", check=False)
        if result.returncode != 0:
            log = (pgdata / "server.log")
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"embedded PostgreSQL did not start on 127.0.0.1:{port} "
                f"(set EMBEDDED_PG_PORT to use another port):\n{result.stderr}\n{tail}"
            )
    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    ensure_database(admin, database)
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def stop(settings: Settings) -> bool:
    pgdata = settings.data_dir / "pgdata"
    if not is_running(pgdata):
        return False
    _pg_ctl(pgdata, "-w", "-m", "fast", "stop")
    return True


def ensure_database(admin_url: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m defection_warehouse.embedded",
                                     description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status", "url"])
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.action == "start" or args.action == "url":
        print(start(settings))
    elif args.action == "stop":
        print("stopped" if stop(settings) else "not running")
    else:
        running = is_running(settings.data_dir / "pgdata")
        print("running" if running else "not running")
        return 0 if running else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
