"""Currencies: MRR of customers billed in eur and gbp is converted to the reporting
currency (usd) once, at the FX seed's rate of the month each line's service period
starts; a currency without a rate for a month it is billed in fails the build gate with
the currency and the month in the message; and a changed FX seed recomputes every
customer, so no converted number is left at an old rate.

A small generated business (some of whose EMEA customers are billed in eur and gbp at
local list prices) goes through the real extract and load and dbt builds every model
once per module; cases that change the warehouse work on a clone.
"""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, date
from fractions import Fraction
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.db import one_row
from defection_warehouse.quality.gate import (
    EXPECTATIONS_DIR,
    GateOptions,
    QualityGateFailed,
    validate_build,
)
from defection_warehouse.sample import SampleParams, catalog
from defection_warehouse.transform.dbt_runner import run_dbt
from tests.builders import build_sample_warehouse

END = date(2026, 3, 31)
BUILD = "analytics_build"
FX_SEED = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds" / "fx_rates_monthly.csv"


@pytest.fixture(scope="module")
def template(module_database, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("currency")
    crm = module_database("dwtest_fx_crm")
    url = module_database("dwtest_fx_wh")
    params = SampleParams(customers=160, months=8, seed=29, end_date=END)
    build_sample_warehouse(root, crm, url, params, schema=BUILD)
    return url


@pytest.fixture(scope="module")
def options(tmp_path_factory) -> GateOptions:
    """The committed GX project, copied so that runs leave the repository untouched."""
    root = tmp_path_factory.mktemp("gx_project")
    shutil.copytree(EXPECTATIONS_DIR / "gx", root / "gx",
                    ignore=shutil.ignore_patterns("uncommitted"))
    return GateOptions(project_dir=root, build_data_docs=False, record_results=False)


def _seed_rates() -> dict[tuple[str, date], Fraction]:
    with FX_SEED.open(newline="") as f:
        return {(r["currency"], date.fromisoformat(r["month"])): Fraction(r["rate_to_base"])
                for r in csv.DictReader(f)}


def _fx_outcomes(url: str, options: GateOptions) -> list:
    try:
        report = validate_build(url, BUILD, END, run_id="test__fx", options=options)
    except QualityGateFailed as failed:
        report = failed.report
    return [o for o in report.results if o.check == "fx_rates"]


def test_fx_seed_is_the_catalogs() -> None:
    """The shipped seed holds the rates the sample's local prices were set against."""
    assert FX_SEED.read_text() == catalog.fx_seed_csv()
    rates = _seed_rates()
    for (currency, _month), rate in rates.items():
        if currency != "usd":
            reference = Fraction(catalog.FX_REFERENCE[currency])
            assert abs(rate / reference - 1) <= Fraction(3, 100)


def test_eur_line_converted_by_hand(template: str) -> None:
    """The unit tests of the conversion (a EUR line of 2,685 a month at 1.0850:
    2,913.225 a month; a GBP yearly line; a CHF line without a rate, kept) and of the
    quick ratio with reactivation pass."""
    results = run_dbt(["test", "--select", "invoice_lines_normalised_to_a_month",
                       "kpis_from_movements_and_defections"],
                      template, schema=BUILD, as_of=END)  # raises DbtError on a failure
    assert len(results) == 2


def test_sample_bills_some_customers_in_eur_and_gbp_at_local_prices(template: str) -> None:
    with psycopg.connect(template) as conn:
        customers = dict(conn.execute(
            "select lower(currency), count(*) from raw_billing.customers group by 1"))
        lines = conn.execute(
            "select i.currency, l.quantity, l.amount, l.price_id "
            "from raw_billing.invoice_lines as l join raw_billing.invoices as i "
            "using (invoice_id) where i.currency <> 'usd'").fetchall()
    assert customers.get("eur", 0) > 0 and customers.get("gbp", 0) > 0
    assert customers["usd"] > 5 * (customers["eur"] + customers["gbp"])
    for currency, quantity, amount, price_id in lines:
        usd = catalog.PRICE_BY_ID[price_id].unit_amount
        assert amount == quantity * catalog.local_unit_amount(usd, currency)


def test_mrr_of_non_usd_customers_is_converted_once(template: str) -> None:
    """Every line carries its billed amount and currency, the month and rate it was
    converted at; a customer's MRR in the mart is its converted lines' sum / 12, rounded
    once, and stays within 3% of the usd list price (the seed's rates move within 3% of
    the reference the local prices were set at)."""
    rates = _seed_rates()
    with psycopg.connect(template) as conn:
        lines = conn.execute(
            "select currency, fx_month, fx_rate, net_amount, recurring_interval, "
            "annualised_amount, reporting_currency, period_start_at "
            "from intermediate.int_revenue__invoice_line_mrr").fetchall()
        mart = conn.execute(
            f"select m.customer_id, m.month, m.mrr, c.currency from {BUILD}."
            "fct_customer_mrr_monthly as m join raw_billing.customers as c "
            "using (customer_id) where m.mrr > 0 and c.currency <> 'usd'").fetchall()
        converted = dict(((c, m), v) for c, m, v in conn.execute(
            "select l.customer_id, months.month, round(sum(l.annualised_amount) / 12) "
            "from intermediate.int_revenue__invoice_line_mrr as l "
            "join intermediate.int_revenue__months as months "
            "on months.snapshot_at > l.period_start_at "
            "and months.snapshot_at <= l.period_end_at "
            "and (l.subscription_ended_at is null "
            "     or months.snapshot_at <= l.subscription_ended_at) "
            "group by 1, 2"))
        list_mrr = dict(conn.execute(
            "select sub.customer_id, sum(s.quantity * p.unit_amount "
            "  * (case p.billing_interval when 'year' then 1 else 12 end)) / 12.0 "
            "from staging.stg_billing__subscription_items as s "
            "join seeds.plan_catalog as p using (price_id) "
            "join staging.stg_billing__subscriptions as sub using (subscription_id) "
            "where sub.ended_at is null and sub.discount_percent_off is null "
            "group by 1"))
    assert {r[0] for r in lines} >= {"usd", "eur", "gbp"}
    for currency, month, rate, net, interval, annualised, reporting, start in lines:
        assert reporting == "usd"
        assert month == start.astimezone(UTC).date().replace(day=1)
        want = Fraction(1) if currency == "usd" else rates[(currency, month)]
        assert Fraction(rate) == want
        per_year = 12 if interval == "month" else 1
        assert Fraction(annualised) == net * per_year * want
    assert mart
    checked = 0
    for customer, month, mrr, _currency in mart:
        assert mrr == converted[(customer, month)]
        if month == END.replace(day=1) and customer in list_mrr:
            assert abs(Fraction(mrr) / Fraction(list_mrr[customer]) - 1) < Fraction(31, 1000)
            checked += 1
    assert checked > 0


def _eur_month(url: str) -> date:
    with psycopg.connect(url) as conn:
        return one_row(conn.execute(
            "select max(fx_month) from intermediate.int_revenue__invoice_line_mrr "
            "where currency = 'eur'"))[0]


def test_missing_rate_fails_the_build_gate_naming_currency_and_month(
        template: str, new_database, options: GateOptions) -> None:
    clean = _fx_outcomes(template, options)
    assert len(clean) == 1 and clean[0].success, clean

    url = new_database.clone(template, "dwtest_fx")
    month = _eur_month(url)
    with psycopg.connect(url) as conn:
        before = conn.execute(
            f"select customer_id, month, mrr from {BUILD}.fct_customer_mrr_monthly "
            "order by 1, 2").fetchall()
        assert conn.execute("delete from seeds.fx_rates_monthly "
                            "where currency = 'eur' and month = %s", (month,)).rowcount == 1
    # a night after the seed changed: the revenue models are rebuilt from the seed
    run_dbt(["build", "--quiet", "--select", "int_revenue__invoice_line_mrr+"], url,
            schema=BUILD, as_of=END)
    outcomes = _fx_outcomes(url, options)
    assert len(outcomes) == 1 and not outcomes[0].success and outcomes[0].blocking
    message = outcomes[0].message
    assert "currency: eur" in message and f"month: {month.isoformat()}" in message, message
    with pytest.raises(QualityGateFailed) as failed:
        validate_build(url, BUILD, END, run_id="test__fx", options=options)
    assert f"month: {month.isoformat()}" in str(failed.value)

    # the rate comes back: the next night converts with it again, nothing stale
    with psycopg.connect(url) as conn:
        rate = _seed_rates()[("eur", month)]
        conn.execute("insert into seeds.fx_rates_monthly (month, currency, rate_to_base) "
                     "values (%s, 'eur', %s)",
                     (month, f"{float(rate):.4f}"))
    run_dbt(["build", "--quiet", "--select", "int_revenue__invoice_line_mrr+"], url,
            schema=BUILD, as_of=END)
    assert _fx_outcomes(url, options)[0].success
    with psycopg.connect(url) as conn:
        after = conn.execute(
            f"select customer_id, month, mrr from {BUILD}.fct_customer_mrr_monthly "
            "order by 1, 2").fetchall()
    assert after == before


def test_changed_rate_reaches_the_marts(template: str, new_database) -> None:
    """A rate edited in the seed (no billing change at all) reaches the marts."""
    url = new_database.clone(template, "dwtest_fx")
    month = _eur_month(url)
    with psycopg.connect(url) as conn:
        conn.execute("update seeds.fx_rates_monthly set rate_to_base = rate_to_base * 2 "
                     "where currency = 'eur' and month = %s", (month,))
        eur_mrr = one_row(conn.execute(
            f"select sum(m.mrr) from {BUILD}.fct_customer_mrr_monthly as m "
            "join raw_billing.customers as c using (customer_id) "
            "where c.currency = 'eur' and m.month = %s", (month,)))[0]
    run_dbt(["build", "--quiet", "--select", "int_revenue__invoice_line_mrr+"], url,
            schema=BUILD, as_of=END)
    with psycopg.connect(url) as conn:
        doubled = one_row(conn.execute(
            f"select sum(m.mrr) from {BUILD}.fct_customer_mrr_monthly as m "
            "join raw_billing.customers as c using (customer_id) "
            "where c.currency = 'eur' and m.month = %s", (month,)))[0]
    assert doubled > eur_mrr
