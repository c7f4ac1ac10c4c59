"""The same business through both Stripe API shapes gives the same warehouse.

One small sample is served by the local billing API; the whole night (extract, load, dbt
build of every model) runs twice into two throwaway warehouses: once pinned to the
version the extractor is written for (2025-02-24.acacia: prices, subscriptions and
periods at the top of lines, invoices and subscriptions), once pinned to the current
shape (2025-09-30.clover: pricing.price_details, parent.*_details, periods on the
subscription items, discounts naming their coupon). The raw tables differ (each shape
fills its own columns), every staging row and every mart row must not.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from defection_warehouse.config import STAGING_SCHEMA, Settings
from defection_warehouse.db import one_row
from defection_warehouse.pipeline import Endpoints, extract, load, transform
from defection_warehouse.sample import SampleParams, generate
from defection_warehouse.sample.billing_server import BillingServer
from defection_warehouse.sources.contracts import BILLING_API_VERSION, CLOVER_API_VERSION, SOURCES

pytestmark = pytest.mark.slow

END = date(2026, 5, 31)
KEY = "sk_test_api_versions_only"
REVENUE_MARTS = ("fct_customer_mrr_monthly", "fct_mrr_movements", "kpi_retention_monthly",
                 "fct_defections")
# what tells two loads and builds apart, not what they hold
METADATA = ("batch_id", "logical_date", "loaded_at", "built_at", "_batch_id",
            "_logical_date", "_loaded_at", "_source_file")


def _rows(conn: psycopg.Connection, table: str) -> list[tuple]:
    schema, name = table.split(".")
    columns = [c for (c,) in conn.execute(
        "select column_name from information_schema.columns where table_schema = %s "
        "and table_name = %s order by ordinal_position", (schema, name)) if c not in METADATA]
    assert columns, f"{table} not found"
    query = sql.SQL("select {cols} from {table} order by {cols}").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        table=sql.Identifier(schema, name))
    return [tuple(columns), *conn.execute(query).fetchall()]


def _tables(conn: psycopg.Connection, schema: str, like: str = "%") -> list[str]:
    return [f"{schema}.{t}" for (t,) in conn.execute(
        "select table_name from information_schema.tables where table_schema = %s "
        "and table_name like %s order by 1", (schema, like))]


def test_both_api_shapes_build_identical_marts(tmp_path: Path, new_database) -> None:
    crm = new_database("dwtest_ver_crm")
    sample = tmp_path / "sample"
    generate(SampleParams(customers=120, months=8, seed=23, end_date=END), sample, crm,
             progress=None)
    base = Settings.from_env().model_copy(update={"survey_inbox": str(sample / "survey_inbox")})
    warehouses = {}
    with BillingServer(sample / "billing.sqlite", KEY) as server:
        for name, version in (("pinned", BILLING_API_VERSION), ("current", CLOVER_API_VERSION)):
            url = new_database(f"dwtest_ver_{name}")
            settings = base.model_copy(update={
                "landing_url": str(tmp_path / f"landing_{name}"), "billing_api_version": version})
            endpoints = Endpoints(url, crm, server.url, KEY)
            calls = server.request_count
            for source in SOURCES:
                extract(source, END, endpoints, settings)
                load(source, END, endpoints, settings)
            assert {r.stripe_version for r in server.requests_log[calls:]} == {version}
            transform(END, endpoints, settings)
            warehouses[name] = (url, settings.build_schema)

    pinned_url, build_schema = warehouses["pinned"]
    current_url, _ = warehouses["current"]
    with psycopg.connect(pinned_url) as pinned, psycopg.connect(current_url) as current:
        # each shape filled its own raw columns
        old_cols = pinned.execute(
            "select count(price_id), count(pricing_price_id), count(subscription_id), "
            "count(parent_subscription_id) from raw_billing.invoice_lines").fetchone()
        new_cols = current.execute(
            "select count(price_id), count(pricing_price_id), count(subscription_id), "
            "count(parent_subscription_id) from raw_billing.invoice_lines").fetchone()
        lines = old_cols[0]
        assert lines > 0 and old_cols == (lines, 0, lines, 0)
        assert new_cols == (0, lines, 0, lines)
        assert one_row(current.execute("select count(*) from raw_billing.subscriptions where "
                                       "current_period_end is not null"))[0] == 0
        assert one_row(current.execute("select count(*) from raw_billing.prices"))[0] > 0

        # the current shape produced MRR, and the same as the pinned one
        mrr = one_row(current.execute(
            f"select sum(mrr) from {build_schema}.fct_customer_mrr_monthly"))[0]
        assert mrr and mrr > 0

        staging = _tables(pinned, STAGING_SCHEMA, "stg_billing__%")
        marts = _tables(pinned, build_schema)
        assert {f"{build_schema}.{m}" for m in REVENUE_MARTS} <= set(marts)
        assert _tables(current, build_schema) == marts
        for table in [*staging, *marts]:
            old, new = _rows(pinned, table), _rows(current, table)
            assert len(old) == len(new), f"{table}: {len(old) - 1} rows against {len(new) - 1}"
            differing = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
            assert not differing, f"{table} differs, first rows: {differing[:3]}"
