"""The churn and retention KPIs of the marts, recomputed independently from raw billing.

A small generated sample goes through the real extract and load into a fresh warehouse,
dbt builds the marts, and the test then recomputes, in plain Python from the raw_billing
tables only (never from a dbt model), every month's logo churn rate, gross MRR churn rate
and trailing-12-month GRR and NRR. Numerators and denominators must be equal to the
mart's; each rate must equal numerator / denominator. It also checks that dim_customers
holds the billing e-mail only as its keyed HMAC-SHA256.

The recomputation follows the documented definitions:
- a subscription counts unless it is trialing or incomplete; it has ended when its
  ended_at lies before the end of the as-of date (the newest logical date loaded);
- a customer's MRR in a month is taken at the month's last instant (for the as-of month,
  the end of the as-of date): the recurring, non-proration lines of non-void invoices
  whose service period covers that instant, of subscriptions not ended by then, net of
  discounts, annualised (monthly x 12, yearly as is, / interval count), summed, divided by
  12 and rounded half away from zero to whole cents; a line billed in another currency
  than the reporting one (usd) is converted at the FX seed's rate of the month its service
  period starts, read from dbt_project/seeds/fx_rates_monthly.csv;
- paying = MRR > 0; churned in a month = paying at the end of the previous month and not
  at the end of this one;
- quick ratio = (new + expansion + reactivation MRR) / (churned + contraction MRR), as
  ChartMogul and Baremetrics compute it.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.db import one_row
from defection_warehouse.load.raw_loader import RawLoader
from defection_warehouse.sample import SampleParams, generate
from defection_warehouse.sample.billing_server import BillingServer
from defection_warehouse.sources.billing import extract_billing
from defection_warehouse.sources.crm import extract_crm
from defection_warehouse.sources.landing import LandingZone
from defection_warehouse.sources.survey import extract_survey
from defection_warehouse.transform.dbt_runner import run_dbt

END = date(2026, 3, 31)
FX_SEED = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds" / "fx_rates_monthly.csv"
KEY = "sk_test_kpi_only"
NOT_PAID = {"trialing", "incomplete", "incomplete_expired"}


# ------------------------------------------------------------------ warehouse fixture
@pytest.fixture
def built_warehouse(tmp_path: Path, new_database, warehouse_url: str) -> str:
    crm = new_database("dwtest_crm")
    sample = tmp_path / "sample"
    generate(SampleParams(customers=300, months=16, seed=23, end_date=END), sample, crm,
             progress=None)
    zone = LandingZone(str(tmp_path / "landing"))
    with BillingServer(sample / "billing.sqlite", KEY) as server:
        extract_billing(zone, END, server.url, KEY)
    extract_crm(zone, END, crm)
    extract_survey(zone, END, str(sample / "survey_inbox"))
    loader = RawLoader(warehouse_url, zone)
    for source in ("crm", "billing", "survey"):
        loader.load(source, END)
    run_dbt(["build", "--select", "+kpi_retention_monthly", "+dim_customers",
             "--indirect-selection", "cautious"],
            warehouse_url, schema="analytics", as_of=END)
    return warehouse_url


# ------------------------------------------------------------------ plain recomputation
def _latest(rows: list[tuple], key: int, logical_date: int) -> dict[object, tuple]:
    """The newest landed version of every key (raw keeps every version)."""
    out: dict[object, tuple] = {}
    for row in rows:
        kept = out.get(row[key])
        if kept is None or row[logical_date] > kept[logical_date]:
            out[row[key]] = row
    return out


def _round_half_away(value: Fraction) -> int:
    sign = -1 if value < 0 else 1
    return sign * int((abs(value) + Fraction(1, 2)) // 1)


def _month_add(month: date, n: int) -> date:
    y, m = divmod(month.year * 12 + month.month - 1 + n, 12)
    return date(y, m + 1, 1)


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def recompute(url: str) -> dict[date, dict[str, object]]:
    with psycopg.connect(url) as conn:
        subs = _latest(conn.execute(
            "select subscription_id, status, start_date, ended_at, _logical_date "
            "from raw_billing.subscriptions").fetchall(), 0, 4)
        invoices = _latest(conn.execute(
            "select invoice_id, customer_id, status, currency, _logical_date "
            "from raw_billing.invoices").fetchall(), 0, 4)
        lines = _latest(conn.execute(
            "select line_id, invoice_id, subscription_id, recurring_interval, "
            "recurring_interval_count, amount, discount_amount, period_start, period_end, "
            "proration, _logical_date from raw_billing.invoice_lines").fetchall(), 0, 10)
        as_of = one_row(conn.execute(
            "select max(_logical_date) from raw_billing.subscriptions"))[0]

    as_of_end = _epoch(as_of + timedelta(days=1))
    with FX_SEED.open(newline="") as f:
        # value of one unit in the base currency (usd, the reporting currency: rate 1)
        rates = {(r["currency"], date.fromisoformat(r["month"])): Fraction(r["rate_to_base"])
                 for r in csv.DictReader(f)}
    ended: dict[str, int | None] = {}
    for sub_id, status, start, ended_at, _ in subs.values():
        if status in NOT_PAID or start >= as_of_end:
            continue
        ended[sub_id] = ended_at if ended_at is not None and ended_at < as_of_end else None

    # (customer, annualised amount, period start, period end, subscription end)
    recurring = []
    for (_, inv_id, sub_id, interval, count, amount, discount, ps, pe, proration,
         _) in lines.values():
        invoice = invoices.get(inv_id)
        if proration or interval is None or sub_id not in ended or invoice is None \
                or invoice[2] == "void":
            continue
        net = amount - (discount or 0)
        per_year = {"month": 12, "year": 1, "week": 52, "day": 365}[interval]
        start = datetime.fromtimestamp(ps, UTC).date()
        currency = invoice[3].lower()
        rate = Fraction(1) if currency == "usd" else (
            rates[(currency, start.replace(day=1))] / rates[("usd", start.replace(day=1))])
        recurring.append((invoice[1], Fraction(net * per_year, count or 1) * rate, ps, pe,
                          ended[sub_id]))

    first = min(ps for _, _, ps, _, _ in recurring)
    first_day = datetime.fromtimestamp(first, UTC).date()
    months = []
    month = date(first_day.year, first_day.month, 1)
    while month <= as_of:
        months.append(month)
        month = _month_add(month, 1)

    mrr: dict[date, dict[str, int]] = {}
    for month in months:
        snapshot = min(_epoch(_month_add(month, 1)), as_of_end)
        annual: dict[str, Fraction] = defaultdict(Fraction)
        for customer, amount, ps, pe, sub_end in recurring:
            if ps < snapshot <= pe and (sub_end is None or sub_end >= snapshot):
                annual[customer] += amount
        mrr[month] = {c: _round_half_away(a / 12) for c, a in annual.items()}

    def paying(month: date) -> dict[str, int]:
        return {c: v for c, v in mrr.get(month, {}).items() if v > 0}

    kpis: dict[date, dict[str, object]] = {}
    for month in months:
        before, now = paying(_month_add(month, -1)), mrr[month]
        churned = [c for c in before if now.get(c, 0) == 0]
        contraction = sum(before[c] - now[c] for c in before if 0 < now.get(c, 0) < before[c])
        churned_mrr = sum(before[c] for c in churned)
        base = paying(_month_add(month, -12))
        earlier = set().union(*(paying(m) for m in months if m < _month_add(month, -1)))
        new = sum(v for c, v in now.items() if v > 0 and c not in before and c not in earlier)
        reactivation = sum(v for c, v in now.items() if v > 0 and c not in before and c in earlier)
        expansion = sum(v - before[c] for c, v in now.items() if c in before and v > before[c])
        kpis[month] = {
            "quick_ratio": (new + expansion + reactivation, churned_mrr + contraction),
            "reactivation_mrr": reactivation,
            "logo_churn_rate": (len(churned), len(before)),
            "gross_mrr_churn_rate": (churned_mrr + contraction, sum(before.values())),
            "grr_t12": (sum(min(now.get(c, 0), v) for c, v in base.items()),
                        sum(base.values())),
            "nrr_t12": (sum(now.get(c, 0) for c in base), sum(base.values())),
        }
    return kpis


# ------------------------------------------------------------------ the test
def test_kpis_reconcile_with_raw_billing(built_warehouse: str) -> None:
    _assert_emails_pseudonymised(built_warehouse)
    _assert_rebuilt_tables_analyzed(built_warehouse)
    expected = recompute(built_warehouse)
    rates = ("logo_churn_rate", "gross_mrr_churn_rate", "grr_t12", "nrr_t12", "quick_ratio")
    columns = ", ".join(f"{r}_numerator, {r}_denominator, {r}" for r in rates)
    with psycopg.connect(built_warehouse) as conn:
        rows = conn.execute(
            f"select month, {columns} from analytics.kpi_retention_monthly order by month"
        ).fetchall()

    assert [r[0] for r in rows] == sorted(expected), "one KPI row per month, no gaps"
    months_with_grr = 0
    for month, *values in rows:
        for i, rate in enumerate(rates):
            numerator, denominator, value = values[3 * i: 3 * i + 3]
            want_num, want_den = expected[month][rate]
            assert (numerator, denominator) == (want_num, want_den), (month, rate)
            if want_den == 0:
                assert value is None, (month, rate)
            else:
                assert isinstance(value, Decimal)
                # numeric division keeps 20 significant decimals
                assert abs(Fraction(value) - Fraction(want_num, want_den)) < Fraction(
                    1, 10**15), (month, rate, value)
        months_with_grr += expected[month]["grr_t12"][1] > 0

    # the sample is long enough to exercise every KPI, churn included
    assert months_with_grr >= 3
    assert sum(expected[m]["logo_churn_rate"][0] for m in expected) > 0
    assert sum(expected[m]["gross_mrr_churn_rate"][0] for m in expected) > 0
    # reactivation counts in the quick ratio: the old formula, without it, would differ
    assert any(expected[m]["reactivation_mrr"] > 0 and expected[m]["quick_ratio"][1] > 0
               for m in expected)
    # and the sample bills some customers in other currencies than usd
    with psycopg.connect(built_warehouse) as conn:
        currencies = {r[0] for r in conn.execute(
            "select distinct lower(currency) from raw_billing.invoices")}
    assert {"eur", "gbp"} <= currencies


def _assert_emails_pseudonymised(url: str) -> None:
    """dim_customers keeps only the keyed HMAC-SHA256 of the billing e-mail."""
    with psycopg.connect(url) as conn:
        pairs = conn.execute(
            "select d.email_hash, lower(trim(c.email)) from analytics.dim_customers as d "
            "join raw_billing.customers as c using (customer_id)").fetchall()
    # var('pseudonymization_key') defaults to this environment variable, then a demo key
    key = (os.environ.get("DW_PSEUDONYMIZATION_KEY") or "demo-only-pseudonymization-key").encode()
    assert pairs
    for email_hash, email in pairs:
        assert email_hash == hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


def _assert_rebuilt_tables_analyzed(url: str) -> None:
    """Every table the build rebuilt has planner statistics, from the sample that
    var('analyze_statistics_target') sets (10: at most 11 histogram bounds).

    The bounds are read on kpi_retention_monthly, one row per month: autovacuum
    re-analyzes a table (with the server's own target) only after more than
    autovacuum_analyze_threshold (50) rows changed, so a table this small keeps the
    statistics the build left, while a larger one such as dim_customers may be
    re-analyzed at any moment after its build committed."""
    with psycopg.connect(url) as conn:
        never = conn.execute(
            "select schemaname || '.' || relname from pg_stat_user_tables "
            "where schemaname in ('intermediate', 'analytics') and last_analyze is null"
        ).fetchall()
        months, bounds = one_row(conn.execute(
            "select (select count(*) from analytics.kpi_retention_monthly), "
            "array_length(histogram_bounds::text::text[], 1) from pg_stats "
            "where schemaname = 'analytics' and tablename = 'kpi_retention_monthly' "
            "and attname = 'month'"))
        threshold = int(one_row(conn.execute("show autovacuum_analyze_threshold"))[0])
    assert never == []
    # more distinct months than a target of 10 keeps, fewer rows than autovacuum needs
    assert 11 < months <= threshold
    assert bounds == 11
