"""Set-ups several test modules share: a generated business, landed, loaded and built."""

from __future__ import annotations

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
