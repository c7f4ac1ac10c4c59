"""The leadership report and the owner digests, on a small generated business built by
dbt and published to `analytics` once per module: the report renders every chart with
data in headless Chromium and its headline figures are the KPI table's; each owner's
digest adds up to mart_cause_attribution for that owner and month; a webhook that fails
is logged, not raised, and leaves the published schema as it was.
"""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from plotly.offline import get_plotlyjs

from defection_warehouse.publish.swap import publish, published_checksums
from defection_warehouse.report.build import BuiltReport, build
from defection_warehouse.report.data import (
    ReportDataError,
    cause_trends,
    focus_month,
    load_report_data,
    trend_direction,
)
from defection_warehouse.report.digests import owning_functions, read_digests, send_digests
from defection_warehouse.sample import SampleParams
from tests import browser
from tests.builders import build_sample_warehouse

END = date(2026, 3, 31)  # a month end: the headline month is March 2026
BUILD = "analytics_build"
PUB = "analytics"


@pytest.fixture(scope="module")
def published(module_database, tmp_path_factory) -> str:
    """A warehouse whose marts (14 months of a small business) are published."""
    root = tmp_path_factory.mktemp("report")
    crm = module_database("dwtest_rep_crm")
    url = module_database("dwtest_rep_wh")
    params = SampleParams(customers=150, months=14, seed=31, end_date=END)
    build_sample_warehouse(root, crm, url, params, schema=BUILD)
    publish(url, build_schema=BUILD, publish_schema=PUB, run_id="test__report",
            as_of_date=END)
    return url


@pytest.fixture(scope="module")
def built(published: str, tmp_path_factory) -> BuiltReport:
    return build(published, tmp_path_factory.mktemp("data"), PUB)


def rows(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def test_report_is_kept_per_as_of_date_and_self_contained(built: BuiltReport,
                                                          tmp_path: Path) -> None:
    assert built.as_of_date == END
    assert built.report.parts[-3:] == ("reports", "2026-03-31", "report.html")
    page = built.report.read_text()
    assert get_plotlyjs() in page  # the library inline ...
    around = page.replace(get_plotlyjs(), "")
    assert "<script src" not in around and "://" not in around  # ... and nothing fetched
    assert page.count('class="asof">As of 2026-03-31.') == page.count('class="chart"') == 8


def test_as_of_must_be_the_published_date(published: str, tmp_path: Path) -> None:
    with pytest.raises(ReportDataError, match="as of 2026-03-31, not 2026-02-28"):
        build(published, tmp_path, PUB, as_of=date(2026, 2, 28))


def test_digest_totals_equal_the_attribution_mart(published: str,
                                                  built: BuiltReport) -> None:
    digests = {d["owner"]: d for d in read_digests(built.digests)}
    assert sorted(digests) == owning_functions()
    mart = {owner: (lost, defections) for owner, lost, defections in rows(
        published, "select owning_function, sum(lost_mrr_attributed), "
                   "sum(defections_attributed) from analytics.mart_cause_attribution "
                   "where defection_month = %s group by 1", (date(2026, 3, 1),))}
    assert mart, "the sample has defections in the headline month"
    for owner, digest in digests.items():
        lost, defections = mart.get(owner, (Decimal(0), Decimal(0)))
        assert digest["month"] == "2026-03-01"
        assert Decimal(digest["lost_mrr"]) == lost, owner
        assert Decimal(digest["defections"]) == defections, owner
        # the defections listed behind it carry the same weights
        assert sum(Decimal(d["weight"]) * d["lost_mrr"]
                   for d in digest["defection_rows"]) == lost, owner
        at_risk = rows(published, "select coalesce(sum(mrr_at_risk), 0), count(*) from "
                                  "analytics.mart_accounts_at_risk where owning_function = %s",
                       (owner,))[0]
        assert (digest["at_risk_mrr"], len(digest["at_risk"])) == at_risk, owner
    month_lost = rows(published, "select defections_lost_mrr from "
                                 "analytics.kpi_retention_monthly where month = %s",
                      (date(2026, 3, 1),))[0][0]
    assert sum(Decimal(d["lost_mrr"]) for d in digests.values()) == month_lost


def test_failing_webhook_is_logged_and_the_publish_stays(published: str, built: BuiltReport,
                                                        receiver, monkeypatch,
                                                        caplog) -> None:
    for owner in owning_functions():
        monkeypatch.delenv(f"AIRFLOW_CONN_DW_DIGEST_{owner.upper()}", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_DW_DIGEST_SUPPORT", receiver.url("/support"))
    before = published_checksums(published, PUB)
    receiver.status = 500
    result = send_digests(built.digests)
    assert result.failed == ("support",) and result.sent == ()
    assert len(result.skipped) == len(owning_functions()) - 1
    assert "could not send the digest for support: HTTP 500" in caplog.text
    assert published_checksums(published, PUB) == before
    receiver.status = 200
    assert send_digests(built.digests).sent == ("support",)
    posted = receiver.received[-1]
    assert posted["path"] == "/support"
    assert posted["json"]["owner"] == "support"
    assert posted["json"]["text"].startswith("Defection digest for support, 2026-03")


def test_unreachable_webhook_does_not_raise(built: BuiltReport, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DW_DIGEST_FINANCE", "http://127.0.0.1:9/hook")
    assert "finance" in send_digests(built.digests).failed


@pytest.mark.browser
def test_report_renders_in_headless_chromium(published: str, built: BuiltReport,
                                             tmp_path: Path) -> None:
    if not browser.available():
        if shutil.which("apt-get"):
            pytest.fail("Chromium is missing: `make browser` installs it")
        pytest.skip("no /usr/bin/chromium and no apt-get to install it")
    with browser.chromium() as driver:
        driver.get(built.report.as_uri())
        assert driver.execute_script("return typeof window.Plotly") == "object"
        charts = driver.execute_script("""
            return Array.from(document.querySelectorAll('section.chart')).map(s => ({
              id: s.dataset.chart,
              points: Number(s.dataset.points),
              traces: (s.querySelector('.js-plotly-plot')._fullData || []).length,
              drawn: s.querySelectorAll('.scatterlayer .trace path.js-line, '
                + '.scatterlayer .point, .barlayer .point, .heatmaplayer image').length,
              definition: s.querySelector('p.definition').textContent}))""")
        kpis = driver.execute_script("""
            return Object.fromEntries(Array.from(document.querySelectorAll('.kpi')).map(
              k => [k.dataset.kpi, [k.dataset.value,
                                    k.querySelector('.kpi-value').textContent]]))""")
        shot = browser.screenshot(driver, tmp_path / "report.png")
    assert shot.stat().st_size > 50_000
    assert [c["id"] for c in charts] == [
        "churn", "grr_nrr", "lost_mrr_by_cause", "lost_mrr_by_owner", "cohort_logo",
        "cohort_revenue", "coverage", "at_risk"]
    for chart in charts:
        assert chart["points"] > 0 and chart["traces"] > 0, chart
        assert chart["drawn"] > 0, f"{chart['id']} drew nothing"
        assert "As of 2026-03-31." in chart["definition"], chart["id"]
    kpi = dict(zip(("grr_t12", "nrr_t12", "logo_churn_rate"), rows(
        published, "select grr_t12, nrr_t12, logo_churn_rate "
                   "from analytics.kpi_retention_monthly where month = %s",
        (date(2026, 3, 1),))[0], strict=True))
    assert kpi["grr_t12"] is not None
    for name, digits in (("grr_t12", 1), ("nrr_t12", 1), ("logo_churn_rate", 2)):
        value, shown = kpis[name]
        assert Decimal(value) == kpi[name], name
        assert shown == f"{float(kpi[name]) * 100:.{digits}f}%", name


def test_report_data_reads_the_published_schema_only(published: str) -> None:
    """With every other schema of the warehouse renamed away the report still builds."""
    others = [r[0] for r in rows(published, """
        select nspname from pg_namespace
        where nspname not in (%s, 'public', 'information_schema')
          and nspname not like 'pg\\_%%'""", (PUB,))]
    assert "intermediate" in others and "raw_billing" in others
    with psycopg.connect(published, autocommit=True) as conn:
        for name in others:
            conn.execute(f'alter schema "{name}" rename to "hidden_{name}"')
    try:
        assert load_report_data(published, PUB).as_of_date == END
    finally:
        with psycopg.connect(published, autocommit=True) as conn:
            for name in others:
                conn.execute(f'alter schema "hidden_{name}" rename to "{name}"')


def test_dw_report_prints_the_path(published: str, tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from defection_warehouse.cli import app

    monkeypatch.setenv("WAREHOUSE_URL", published)
    monkeypatch.setenv("DW_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["report", "--as-of", "2026-03-31"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "reports" / "2026-03-31" / "report.html"
    assert result.output.strip().splitlines()[-1] == str(path)
    assert path.exists() and (path.parent / "digests" / "support.json").exists()
    wrong = CliRunner().invoke(app, ["report", "--as-of", "2026-02-28"])
    assert wrong.exit_code != 0


def test_focus_month_and_trend_rules() -> None:
    assert focus_month(date(2026, 3, 31)) == date(2026, 3, 1)
    assert focus_month(date(2026, 3, 30)) == date(2026, 2, 1)
    assert focus_month(date(2026, 1, 5)) == date(2025, 12, 1)
    assert trend_direction(Decimal(111), Decimal(100)) == "rising"
    assert trend_direction(Decimal(89), Decimal(100)) == "falling"
    assert trend_direction(Decimal(105), Decimal(100)) == "flat"
    assert trend_direction(Decimal(0), Decimal(0)) == "flat"
    assert trend_direction(Decimal(5), Decimal(0)) == "rising"
    assert trend_direction(Decimal(5), None) == "new"
    rows = [{"defection_month": date(2026, m, 1), "cause_id": "price", "cause_label": "Price",
             "owning_function": "pricing", "lost_mrr": Decimal(v), "defections": Decimal(1)}
            for m, v in ((1, 300), (3, 600), (4, 100))]  # February lost nothing
    (trend,) = cause_trends(rows, date(2026, 4, 1))
    assert trend.trailing_mean == Decimal(300)  # (300 + 0 + 600) / 3
    assert (trend.lost_mrr, trend.direction) == (Decimal(100), "falling")
