"""docker-compose.yml's metabase-setup: Metabase's admin and the warehouse, once.

On a new Metabase it creates the admin (MB_ADMIN_EMAIL, MB_ADMIN_PASSWORD) through the setup
API; on one already set up it logs in as that admin. Then it adds the warehouse as a
PostgreSQL database, unless one of that name exists: read by the BI login (DW_BI_USER,
password DW_REPORTER_PASSWORD), a member of dw_reporter, which may read the published
schema (DW_PUBLISH_SCHEMA) and nothing else; Metabase is shown that schema only.

Standard library only; run with the project image's Python. Exits non-zero with Metabase's
answer when a call fails.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

DATABASE_NAME = "Defection Warehouse"
STARTUP_TIMEOUT_SECONDS = 900


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"metabase-setup: set {name}")
    return value


def call(method: str, path: str, body: dict[str, Any] | None = None,
         session: str | None = None) -> Any:
    """One Metabase API call; the decoded JSON answer (None when empty)."""
    request = urllib.request.Request(
        env("MB_URL").rstrip("/") + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"})
    if session:
        request.add_header("X-Metabase-Session", session)
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


def wait_until_up() -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        try:
            if call("GET", "/api/health").get("status") == "ok":
                return
        except (OSError, ValueError):  # not listening yet, or still starting
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"metabase-setup: Metabase at {env('MB_URL')} did not become "
                             f"healthy within {STARTUP_TIMEOUT_SECONDS} s")
        time.sleep(5)


def admin_session() -> str:
    email, password = env("MB_ADMIN_EMAIL"), env("MB_ADMIN_PASSWORD")
    properties = call("GET", "/api/session/properties")
    if not properties.get("has-user-setup") and properties.get("setup-token"):
        answer = call("POST", "/api/setup", {
            "token": properties["setup-token"],
            "user": {"email": email, "password": password, "first_name": "Warehouse",
                     "last_name": "Admin", "site_name": DATABASE_NAME},
            "prefs": {"site_name": DATABASE_NAME, "allow_tracking": False},
        })
        print(f"metabase-setup: created the admin {email}")
        return str(answer["id"])
    return str(call("POST", "/api/session", {"username": email, "password": password})["id"])


def ensure_warehouse(session: str) -> None:
    listed = call("GET", "/api/database", session=session)
    databases = listed["data"] if isinstance(listed, dict) else listed
    if any(db.get("name") == DATABASE_NAME for db in databases):
        print(f"metabase-setup: database {DATABASE_NAME!r} is already there")
        return
    schema = os.environ.get("DW_PUBLISH_SCHEMA") or "analytics"
    call("POST", "/api/database", session=session, body={
        "engine": "postgres",
        "name": DATABASE_NAME,
        "details": {
            "host": env("WAREHOUSE_HOST"),
            "port": int(os.environ.get("WAREHOUSE_PORT") or 5432),
            "dbname": env("WAREHOUSE_DB"),
            "user": env("DW_BI_USER"),
            "password": env("DW_REPORTER_PASSWORD"),
            "ssl": False,
            "schema-filters-type": "inclusion",
            "schema-filters-patterns": schema,
        },
    })
    print(f"metabase-setup: added {DATABASE_NAME!r} (schema {schema}, as {env('DW_BI_USER')})")


def main() -> int:
    wait_until_up()
    try:
        ensure_warehouse(admin_session())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:2000]
        print(f"metabase-setup: {exc.code} from {exc.url}: {detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
