"""docker-compose.yml without Docker: valid against the Compose Specification, in the shape
of Airflow 3's official file, with the pieces a night needs (shared JWT secret, the project
path, the sample profile, the BI login) and no secret written in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from defection_warehouse.config import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}
REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]*\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def uncommented(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def command(service: dict[str, Any]) -> str:
    cmd = service.get("command") or ""
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def test_valid_against_the_compose_specification() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    proc = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec",
                           str(COMPOSE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


def test_airflow_services_in_the_official_shape(compose: dict[str, Any]) -> None:
    services = compose["services"]
    common = environment(compose["x-airflow-common"])
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    by_command = {command(s): name for name, s in services.items()}
    assert set(by_command) >= AIRFLOW_COMMANDS, by_command
    assert {"postgres", "redis", "warehouse", "airflow-init"} <= set(services)
    for name in (by_command[c] for c in AIRFLOW_COMMANDS):
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert "healthcheck" in services[name], name
    # Airflow's metadata database and the warehouse are separate servers
    assert "airflow" in common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("@")[1]
    assert common["AIRFLOW_CONN_WAREHOUSE"].endswith("@warehouse:5432/warehouse")


def test_every_airflow_component_shares_the_jwt_secret(compose: dict[str, Any]) -> None:
    """Without one secret the worker's tasks fail with "Invalid auth token: Signature
    verification failed"; it comes from the environment, never from the file."""
    secret = environment(compose["x-airflow-common"])["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert REQUIRED.fullmatch(secret), secret
    for name, service in compose["services"].items():
        if command(service) in AIRFLOW_COMMANDS or name == "airflow-init":
            env = environment(service)
            assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secret, name
            assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == \
                "http://airflow-apiserver:8080/execution/", name
            assert env["AIRFLOW__API__SECRET_KEY"].startswith("${"), name


def test_the_project_paths_and_the_key_come_from_the_environment(
        compose: dict[str, Any]) -> None:
    env = environment(compose["x-airflow-common"])
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "DW_PROJECT_DIR=/opt/project" in dockerfile
    assert env["DW_PROJECT_DIR"] == "/opt/project"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/project/dags"
    assert REQUIRED.fullmatch(env["DW_PSEUDONYMIZATION_KEY"])
    for conn in ("WAREHOUSE", "BILLING_API", "CRM_DB"):
        assert f"AIRFLOW_CONN_{conn}" in env


def test_init_migrates_sets_up_roles_and_builds_the_manifest(compose: dict[str, Any]) -> None:
    init = compose["services"]["airflow-init"]
    script = command(init)
    assert environment(init)["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "dw setup-roles" in script
    assert "--role dw_reporter" in script
    assert "dw dbt parse" in script
    assert any(v.startswith("dbt-target:/opt/project/dbt_project/target")
               for v in init["volumes"])


def test_the_sample_profile_runs_a_night_end_to_end(compose: dict[str, Any]) -> None:
    services = compose["services"]
    sample = {name for name, s in services.items() if "sample" in s.get("profiles", [])}
    assert sample == {"crm", "sample-seed", "billing-api", "sample-run"}
    billing = services["billing-api"]
    assert "defection_warehouse.sample.billing_server" in " ".join(billing["entrypoint"])
    assert "--allow-network" in billing["command"]
    assert "--port" in billing["command"] and "12111" in billing["command"]
    conns = environment(compose["x-airflow-common"])
    assert "@billing-api:12111" in conns["AIRFLOW_CONN_BILLING_API"]
    assert "@crm:5432/crm" in conns["AIRFLOW_CONN_CRM_DB"]
    assert conns["SURVEY_INBOX"].endswith("/opt/airflow/survey_inbox}")
    assert "survey-inbox" in compose["volumes"]
    # the scripts the services run are in the image (docker/ is copied to /opt/project)
    for name in ("sample-seed", "sample-run"):
        script = services[name]["entrypoint"][-1]
        assert script.startswith("/opt/project/docker/")
        assert (PROJECT_ROOT / script.removeprefix("/opt/project/")).is_file()


def test_bi_reads_as_a_member_of_the_reporter_role(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["metabase"]["image"].split(":")[-1] != "latest"
    setup = environment(services["metabase-setup"])
    init = environment(services["airflow-init"])
    assert setup["DW_BI_USER"] == init["DW_BI_USER"]
    assert setup["DW_REPORTER_PASSWORD"] == init["DW_REPORTER_PASSWORD"]
    assert REQUIRED.fullmatch(setup["DW_REPORTER_PASSWORD"])
    script = services["metabase-setup"]["entrypoint"][-1]
    assert (PROJECT_ROOT / script.removeprefix("/opt/project/")).is_file()


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    """A variable that holds a secret is required from the environment, or defaults to a
    value named for local use only (the sample's services, the local metadata database)."""
    secretive = re.compile(r"PASSWORD$|SECRET|_KEY$")
    for name, service in {**compose["services"],
                          "x-airflow-common": compose["x-airflow-common"]}.items():
        for key, value in environment(service).items():
            if secretive.search(key):
                assert "${" in value, f"{name}.{key} is written in the file"
    text = uncommented(COMPOSE.read_text())
    defaults = re.findall(r"\$\{([A-Z0-9_]+):-([^}$]*)\}", text)
    for variable, default in defaults:
        if secretive.search(variable) and default:
            assert "local" in default, f"{variable}'s default {default!r} is not local-only"
    assert REQUIRED.fullmatch(environment(compose["services"]["warehouse"])["POSTGRES_PASSWORD"])


def test_env_example_lists_every_required_variable() -> None:
    required = set(REQUIRED.findall(uncommented(COMPOSE.read_text())))
    example = (PROJECT_ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
    assert required and required <= listed, sorted(required - listed)
    for name in required:  # present without a value: each deployment sets its own
        assert re.search(rf"^{name}=$", example, re.M), name
