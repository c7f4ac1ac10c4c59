"""How the nightly DAG runs dbt: Cosmos renders each mart as a task from the pre-built
manifest (no dbt call at DAG parse time); seeds, staging and intermediate models build in
one task before them, since every extra task costs about a second and a half of start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosmos.profiles.postgres.user_pass import PostgresUserPasswordProfileMapping

from defection_warehouse.config import PROJECT_ROOT

DBT_DIR = PROJECT_ROOT / "dbt_project"
MANIFEST = DBT_DIR / "target" / "manifest.json"


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
