"""The embedded PostgreSQL: starts from the pgserver wheel, keeps its port, stops."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from defection_warehouse import embedded
from defection_warehouse.config import Settings
from defection_warehouse.db import one_row


def test_embedded_server_starts_reuses_its_port_and_stops(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("EMBEDDED_PG_PORT", raising=False)
    settings = Settings.from_env()
    try:
        url = embedded.start(settings)
        with psycopg.connect(url) as conn:
            version = one_row(conn.execute("show server_version_num"))[0]
            listen = one_row(conn.execute("show listen_addresses"))[0]
        assert int(version) >= 160000
        assert listen == "127.0.0.1"
        assert embedded.start(settings) == url  # already running: same server, same URL
    finally:
        stopped = embedded.stop(settings)
    assert stopped
    assert not embedded.is_running(tmp_path / "pgdata")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)
    assert embedded.start(settings) == url  # restarts on the port it had
    embedded.stop(settings)
