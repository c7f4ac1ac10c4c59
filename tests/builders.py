"""Set-ups several test modules share: a generated business, landed, loaded and built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from defection_warehouse.load.raw_loader import RawLoader
from defection_warehouse.sample import SampleParams, generate
from defection_warehouse.sample.billing_server import BillingServer
from defection_warehouse.sources.billing import extract_billing
from defection_warehouse.sources.contracts import SOURCES
from defection_warehouse.sources.crm import extract_crm
from defection_warehouse.sources.landing import LandingZone
from defection_warehouse.sources.survey import extract_survey
from defection_warehouse.transform.dbt_runner import run_dbt


def build_sample_warehouse(root: Path, crm_url: str, warehouse_url: str,
                           params: SampleParams, *, schema: str) -> None:
    """Generate `params`' business under `root`, land and load its last day (a full sync)
    and build every model into `schema`, without Airflow or the gates."""
    end: date = params.end_date
    generate(params, root / "sample", crm_url, progress=None)
    zone = LandingZone(str(root / "landing"))
    with BillingServer(root / "sample" / "billing.sqlite", "sk_test_builder") as server:
        extract_billing(zone, end, server.url, "sk_test_builder")
    extract_crm(zone, end, crm_url)
    extract_survey(zone, end, str(root / "sample" / "survey_inbox"))
    loader = RawLoader(warehouse_url, zone, progress=lambda _message: None)
    for source in SOURCES:
        loader.load(source, end)
    run_dbt(["build", "--quiet"], warehouse_url, schema=schema, as_of=end)


def small_sample(root: Path, crm_url: str, end: date) -> Path:
    """A small business (150 customers, 6 months) for end-to-end runs; its folder."""
    out = root / "sample"
    generate(SampleParams(customers=150, months=6, seed=11, end_date=end), out, crm_url,
             progress=lambda _message: None)
    return out


def dw_env(data_dir: Path, warehouse_url: str, crm_url: str, **settings: str) -> dict[str, str]:
    """The environment of a `dw` command on a small sample business (200 customers, 3
    months) in `data_dir`, against its own warehouse and CRM databases."""
    env = {**os.environ, "WAREHOUSE_URL": warehouse_url, "CRM_URL": crm_url,
           "DW_DATA_DIR": str(data_dir), "SAMPLE_CUSTOMERS": "200", "SAMPLE_MONTHS": "3",
           **settings}
    for inherited in ("LANDING_URL", "SURVEY_INBOX", "BILLING_API_URL", "BILLING_API_KEY"):
        if inherited not in settings:
            env.pop(inherited, None)
    return env


def start_dw(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start `dw <args>` in the background (finish it with `finish_dw`)."""
    dw = Path(sys.executable).with_name("dw")
    return subprocess.Popen([str(dw), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish_dw(proc: subprocess.Popen[str], *, timeout: float = 1800) -> str:
    """Wait for a `dw` command; its output, or a failure that shows the end of it."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, proc.args))} exited {proc.returncode}:\n"
                             f"{out[-4000:]}\n{err[-4000:]}")
    return out


def run_dw(args: list[str], env: dict[str, str], *, timeout: float = 1800) -> str:
    """Run `dw <args>`; its output, or a failure that shows the end of it."""
    return finish_dw(start_dw(args, env), timeout=timeout)


def two_warehouses(root: Path, new_database: Callable[[str], str], first: str,
                   second: str) -> tuple[dict[str, str], dict[str, str]]:
    """The environments of `dw` commands on one small sample business (generated here)
    against two warehouses, each with a data folder (landing zone, Airflow home) of its
    own, so that the two can run at the same time: runs to compare."""
    crm = new_database(f"dwtest_{first}_crm")
    one = dw_env(root / first, new_database(f"dwtest_{first}"), crm)
    other = {**one, "WAREHOUSE_URL": new_database(f"dwtest_{second}"),
             "DW_DATA_DIR": str(root / second)}
    run_dw(["sample"], one)
    shutil.copytree(root / first / "sample", root / second / "sample")
    return one, other
