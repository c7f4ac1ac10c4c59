"""The local billing API's list contract and the billing extract (no database needed)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from defection_warehouse.sample import billing_server
from defection_warehouse.sample.billing_server import BillingServer, Faults, main
from defection_warehouse.sample.billing_store import BillingStore
from defection_warehouse.sources.billing import (
    BillingApiError,
    api_settings_from_connection,
    extract_billing,
    parse_path,
    resolve,
)
from defection_warehouse.sources.contracts import (
    BILLING_API_VERSION,
    BILLING_ENTITIES,
    BILLING_SHAPES,
    CLOVER_API_VERSION,
)
from defection_warehouse.sources.landing import LandingZone

KEY = "sk_test_local_4f9a1c"
FAST = {"backoff_seconds": 0.001, "max_backoff_seconds": 0.01, "timeout_seconds": 5}

FULL_DATE = date(2026, 6, 30)  # after every object in the store
FIRST_DATE = date(2026, 3, 10)  # initial sync: everything created before 2026-03-11
NEXT_DATE = date(2026, 3, 11)  # incremental window [2026-03-11, 2026-03-12)


def ts(day: str, seconds: int = 0) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) + seconds


def price(id_: str, amount: int, interval: str = "month") -> dict[str, Any]:
    return {"id": id_, "object": "price", "product": f"prod_{id_[6:]}", "unit_amount": amount,
            "currency": "usd", "recurring": {"interval": interval, "interval_count": 1}}


def nested(data: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data),
            "url": url}


def build_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    # Customers; two share a creation second, one arrives after the first extract window.
    for i, created in enumerate([ts("2026-01-05"), ts("2026-01-05"), ts("2026-01-06"),
                                 ts("2026-01-07"), ts("2026-01-08"), ts("2026-03-20")]):
        objects.append({
            "id": f"cus_{i:03d}", "object": "customer", "created": created,
            "email": f"billing{i}@example.com", "name": f"Customer {i}",
            "metadata": {"crm_account_id": str(1000 + i)} if i != 4 else {},
            "currency": "usd", "delinquent": i == 2,
        })

    def subscription(id_: str, customer: int, status: str, created: int,
                     items: list[dict[str, Any]], **extra: Any) -> None:
        for n, item in enumerate(items):
            item.update({"id": f"si_{id_[4:]}_{n:02d}", "object": "subscription_item",
                         "subscription": id_, "created": created})
        objects.append({
            "id": id_, "object": "subscription", "customer": f"cus_{customer:03d}",
            "status": status, "created": created, "start_date": created,
            "current_period_start": created, "current_period_end": created + 30 * 86400,
            "cancel_at_period_end": False, "cancel_at": None, "canceled_at": None,
            "ended_at": None, "cancellation_details": {"reason": None, "feedback": None,
                                                       "comment": None},
            "discount": None, "currency": "usd",
            "items": nested(items, f"/v1/subscription_items?subscription={id_}"),
            **extra,
        })

    seats = price("price_seat", 2500)
    subscription("sub_active", 0, "active", ts("2026-01-05", 60),
                 [{"price": seats, "quantity": 12},
                  {"price": price("price_addon", 900), "quantity": 1}],
                 discount={"coupon": {"id": "WELCOME20", "percent_off": 20,
                                      "amount_off": None}})
    subscription("sub_trial", 1, "trialing", ts("2026-01-06", 60),
                 [{"price": price("price_annual", 24000, "year"), "quantity": 5}])
    subscription("sub_pastdue", 2, "past_due", ts("2026-01-07", 60),
                 [{"price": seats, "quantity": 3}])
    # Two canceled subscriptions created in the same second (cursor tie-break).
    subscription("sub_cancel_a", 3, "canceled", ts("2026-01-08", 60),
                 [{"price": seats, "quantity": 4}, {"price": price("price_addon", 900),
                                                    "quantity": 2}],
                 canceled_at=ts("2026-02-20"), ended_at=ts("2026-02-28"),
                 cancellation_details={"reason": "cancellation_requested",
                                       "feedback": "too_expensive",
                                       "comment": "Budget cut, \"maybe\" next year"})
    subscription("sub_cancel_b", 4, "canceled", ts("2026-01-08", 60),
                 [{"price": seats, "quantity": 1}],
                 canceled_at=ts("2026-02-21"), ended_at=ts("2026-02-21"),
                 cancellation_details={"reason": "payment_failed", "feedback": None,
                                       "comment": None})
    subscription("sub_expired", 4, "incomplete_expired", ts("2026-01-09"),
                 [{"price": seats, "quantity": 1}])
    subscription("sub_unpaid", 2, "unpaid", ts("2026-01-10"), [{"price": seats, "quantity": 2}])
    # More items than an embedded list holds: the rest comes from /v1/subscription_items.
    subscription("sub_large", 0, "active", ts("2026-01-11"),
                 [{"price": price(f"price_mod{n}", 100 * n), "quantity": n} for n in range(1, 13)])

    # 300 invoices: 270 before 2026-03-11, 20 on 2026-03-11, 10 on 2026-03-15.
    # Groups of three share a creation second, so ties straddle page boundaries.
    created_at = (
        [ts("2026-02-01") + (i // 3) * 20_000 for i in range(270)]
        + [ts("2026-03-11") + (i // 3) * 3_600 for i in range(20)]
        + [ts("2026-03-15") + i for i in range(10)]
    )
    for i, created in enumerate(created_at):
        inv = f"in_{i:04d}"
        sub = ("sub_active", "sub_pastdue", "sub_trial")[i % 3]
        n_lines = 25 if i == 7 else (2 if i % 5 == 0 else 1)
        lines = []
        for n in range(n_lines):
            line: dict[str, Any] = {
                "id": f"il_{i:04d}_{n:02d}", "object": "line_item", "invoice": inv,
                "subscription": sub, "price": seats, "quantity": 1 + n, "amount": 2500 * (1 + n),
                "discount_amounts": [], "period": {"start": created, "end": created + 2_592_000},
                "proration": n == 1,
            }
            if i % 7 == 0:
                del line["invoice"]  # older API versions leave the parent out
            lines.append(line)
        if i == 0:
            lines[0]["discount_amounts"] = [{"amount": 500, "discount": "di_welcome"}]
        objects.append({
            "id": inv, "object": "invoice", "customer": f"cus_{i % 4:03d}", "subscription": sub,
            "status": "paid" if i % 4 else "open", "billing_reason": "subscription_cycle",
            "created": created, "period_start": created, "period_end": created + 2_592_000,
            "subtotal": 2500, "total": 2000, "amount_due": 2000,
            "amount_paid": 2000 if i % 4 else 0, "attempt_count": 1, "currency": "usd",
            "lines": nested(lines, f"/v1/invoices/{inv}/lines"),
        })
    for i in range(0, 300, 7):
        objects.append({
            "id": f"ch_{i:04d}", "object": "charge", "customer": f"cus_{i % 4:03d}",
            "invoice": f"in_{i:04d}", "amount": 2000, "currency": "usd",
            "status": "failed" if i % 2 else "succeeded",
            "failure_code": "card_declined" if i % 2 else None,
            "refunded": i == 14, "amount_refunded": 2000 if i == 14 else 0,
            "disputed": i == 21, "created": created_at[i] + 60,
        })
    objects.append({"id": "re_0001", "object": "refund", "charge": "ch_0014", "amount": 2000,
                    "currency": "usd", "reason": "requested_by_customer",
                    "status": "succeeded", "created": created_at[14] + 3_600})
    objects.append({"id": "dp_0001", "object": "dispute", "charge": "ch_0021", "amount": 2000,
                    "currency": "usd", "reason": "fraudulent", "status": "needs_response",
                    "created": created_at[21] + 7_200})
    return objects


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("billing") / "billing.sqlite"
    with BillingStore(path) as store:
        store.write(build_objects())
    return path


@pytest.fixture(scope="module")
def store(store_path: Path) -> BillingStore:
    s = BillingStore(store_path)
    yield s
    s.close()


@pytest.fixture
def server(store_path: Path) -> BillingServer:
    with BillingServer(store_path, KEY) as srv:
        yield srv


@pytest.fixture
def zone(tmp_path: Path) -> LandingZone:
    return LandingZone(str(tmp_path / "landing"))


def api(server: BillingServer, path: str, key: str | None = KEY, **params: Any):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(server.url + path, params=params, headers=headers, timeout=5)


def walk(server: BillingServer, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"starting_after": cursor} if cursor else {})}
        body = api(server, path, **query).json()
        out += body["data"]
        if not body["has_more"]:
            return out
        cursor = body["data"][-1]["id"]


# ---------------------------------------------------------------------------------------
# The server's list contract
# ---------------------------------------------------------------------------------------
def test_list_shape_default_limit_and_order(server: BillingServer, store: BillingStore) -> None:
    r = api(server, "/v1/invoices")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and body["url"] == "/v1/invoices"
    assert len(body["data"]) == 10 and body["has_more"] is True
    assert len(api(server, "/v1/invoices", limit=3).json()["data"]) == 3

    everything = walk(server, "/v1/invoices", limit=7)
    keys = [(o["created"], o["id"]) for o in everything]
    assert keys == sorted(keys, reverse=True), "newest first, ties by id descending"
    assert len(keys) == len(set(keys)) == store.count("invoice") == 300


def test_starting_after_breaks_created_ties(server: BillingServer) -> None:
    # in_0000..in_0002 share one second: paging one at a time must still see each once.
    oldest = walk(server, "/v1/invoices", limit=1, **{"created[lte]": ts("2026-02-01")})
    assert [o["id"] for o in oldest] == ["in_0002", "in_0001", "in_0000"]
    page = api(server, "/v1/invoices", limit=2, starting_after="in_0002").json()
    assert [o["id"] for o in page["data"]] == ["in_0001", "in_0000"]
    assert page["has_more"] is False


def test_ending_before(server: BillingServer) -> None:
    page = api(server, "/v1/invoices", limit=2, ending_before="in_0001").json()
    assert [o["id"] for o in page["data"]] == ["in_0003", "in_0002"]
    assert page["has_more"] is True
    r = api(server, "/v1/invoices", starting_after="in_0001", ending_before="in_0005")
    assert r.status_code == 400


def test_created_filters(server: BillingServer, store: BillingStore) -> None:
    lo, hi = ts("2026-03-11"), ts("2026-03-12")
    got = walk(server, "/v1/invoices", limit=100, **{"created[gte]": lo, "created[lt]": hi})
    expected = {o["id"] for o in store.iter_all("invoice") if lo <= o["created"] < hi}
    assert {o["id"] for o in got} == expected and len(expected) == 20
    exact = api(server, "/v1/customers", created=ts("2026-01-05")).json()["data"]
    assert [c["id"] for c in exact] == ["cus_001", "cus_000"]
    gt = api(server, "/v1/customers", **{"created[gt]": ts("2026-01-08")}).json()["data"]
    assert [c["id"] for c in gt] == ["cus_005"]
    assert api(server, "/v1/customers", **{"created[gte]": "yesterday"}).status_code == 400


def test_subscription_status_semantics(server: BillingServer) -> None:
    default = {s["id"] for s in api(server, "/v1/subscriptions", limit=100).json()["data"]}
    assert "sub_cancel_a" not in default and "sub_cancel_b" not in default
    assert {"sub_active", "sub_expired", "sub_unpaid"} <= default and len(default) == 6
    every = api(server, "/v1/subscriptions", limit=100, status="all").json()["data"]
    assert len(every) == 8
    canceled = api(server, "/v1/subscriptions", status="canceled").json()["data"]
    assert [s["id"] for s in canceled] == ["sub_cancel_b", "sub_cancel_a"]  # same second
    assert api(server, "/v1/subscriptions", status="gone").status_code == 400


def test_filters_by_customer(server: BillingServer, store: BillingStore) -> None:
    got = walk(server, "/v1/invoices", limit=50, customer="cus_002")
    assert {o["id"] for o in got} == {
        o["id"] for o in store.iter_all("invoice") if o["customer"] == "cus_002"}
    refunds = api(server, "/v1/refunds", charge="ch_0014").json()["data"]
    assert [r["id"] for r in refunds] == ["re_0001"]


def test_nested_lists(server: BillingServer) -> None:
    invoice = next(o for o in walk(server, "/v1/invoices", limit=100) if o["id"] == "in_0007")
    assert len(invoice["lines"]["data"]) == 10 and invoice["lines"]["has_more"] is True
    lines = walk(server, "/v1/invoices/in_0007/lines", limit=4)
    assert [line["id"] for line in lines] == [f"il_0007_{n:02d}" for n in range(25)]
    rest = api(server, "/v1/invoices/in_0007/lines", starting_after="il_0007_09").json()
    assert rest["data"][0]["id"] == "il_0007_10"

    items = walk(server, "/v1/subscription_items", limit=5, subscription="sub_large")
    assert len(items) == 12
    assert api(server, "/v1/subscription_items").status_code == 400
    assert api(server, "/v1/subscription_items", subscription="sub_nope").status_code == 400
    assert api(server, "/v1/invoices/in_nope/lines").status_code == 404


def test_auth(server: BillingServer) -> None:
    for key in (None, "sk_test_wrong"):
        r = api(server, "/v1/customers", key=key)
        assert r.status_code == 401
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
        assert KEY not in r.text
    basic = requests.get(server.url + "/v1/customers", auth=(KEY, ""), timeout=5)
    assert basic.status_code == 200


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "ten"},
                                    {"expand[]": "data.customer"}, {"colour": "blue"}])
def test_bad_params_are_400(server: BillingServer, params: dict[str, Any]) -> None:
    r = api(server, "/v1/customers", **params)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_unknown_cursor_is_resource_missing(server: BillingServer) -> None:
    r = api(server, "/v1/invoices", starting_after="in_9999")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "resource_missing"
    assert api(server, "/v1/nothing").status_code == 404


def test_faults_are_deterministic(server: BillingServer) -> None:
    server.faults = Faults(rate_limit_every=2, retry_after_seconds=3)
    first, second = api(server, "/v1/customers"), api(server, "/v1/customers")
    assert first.status_code == 200
    assert second.status_code == 429 and second.headers["Retry-After"] == "3"
    server.faults = Faults(error_every=1)
    assert [api(server, "/v1/customers").status_code for _ in range(4)] == [500, 502, 503, 500]
    server.faults = Faults()
    assert api(server, "/v1/customers").status_code == 200
    statuses = [record.status for record in server.requests_log]
    assert statuses == [200, 429, 500, 502, 503, 500, 200]
    assert server.request_count == 7


def test_server_refuses_non_loopback(store_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        BillingServer(store_path, KEY, host="0.0.0.0")


def test_server_on_a_private_network_when_allowed(store_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """docker-compose.yml's billing-api listens on the compose network (0.0.0.0): only
    with allow_network (the CLI's --allow-network)."""
    with BillingServer(store_path, KEY, host="0.0.0.0", allow_network=True) as server:
        r = requests.get(f"http://127.0.0.1:{server.port}/v1/customers",
                         headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
        assert r.status_code == 200 and len(r.json()["data"]) == 6
    monkeypatch.setenv("BILLING_API_KEY", KEY)
    with pytest.raises(SystemExit) as info:
        main(["--store", str(store_path), "--host", "0.0.0.0", "--port", "0"])
    assert info.value.code == 2
    assert "--allow-network" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# The extract
# ---------------------------------------------------------------------------------------
def landed(zone: LandingZone, day: date, entity: str) -> list[dict[str, str]]:
    batch = zone.batch("billing", day)
    with batch.open_file(f"{entity}.csv") as f:
        text = f.read().decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def expected_ids(store: BillingStore, window: tuple[int, int] | None = None) -> dict[str, set]:
    def keep(o: dict[str, Any]) -> bool:
        return window is None or window[0] <= o["created"] < window[1]

    invoices = [o for o in store.iter_all("invoice") if keep(o)]
    subs = list(store.iter_all("subscription"))
    return {
        "customers": {o["id"] for o in store.iter_all("customer")},
        "subscriptions": {o["id"] for o in subs},
        "subscription_items": {i["id"] for s in subs for i in s["items"]["data"]},
        # the server lists the prices its stored items embed
        "prices": {i["price"]["id"] for s in subs for i in s["items"]["data"]},
        "invoices": {o["id"] for o in invoices},
        "invoice_lines": {line["id"] for o in invoices for line in o["lines"]["data"]},
        "charges": {o["id"] for o in store.iter_all("charge") if keep(o)},
        "refunds": {o["id"] for o in store.iter_all("refund") if keep(o)},
        "disputes": {o["id"] for o in store.iter_all("dispute") if keep(o)},
    }


def assert_lands_exactly(zone: LandingZone, day: date, expected: dict[str, set]) -> None:
    manifest = zone.batch("billing", day).manifest()
    for entity in BILLING_ENTITIES:
        rows = landed(zone, day, entity.name)
        key = entity.primary_key[0]
        ids = [r[key] for r in rows]
        assert len(ids) == len(set(ids)), f"{entity.name} landed a record twice"
        assert set(ids) == expected[entity.name], entity.name
        assert manifest.files_for(entity.name)[0].rows == len(rows)
        assert manifest.state["entities"][entity.name]["objects"] == len(rows)
        assert manifest.state["entities"][entity.name]["duplicates_skipped"] == 0


def test_full_extract_lands_every_record_once(server: BillingServer, zone: LandingZone,
                                              store: BillingStore) -> None:
    progress: list[str] = []
    manifest = extract_billing(zone, FULL_DATE, server.url, KEY, progress=progress.append,
                               **FAST)
    assert manifest.extract_window == {"start": None, "end": "2026-07-01T00:00:00+00:00"}
    assert manifest.state["sync"] == "full" and manifest.state["retries"] == 0
    assert_lands_exactly(zone, FULL_DATE, expected_ids(store))
    assert sum(f.rows for f in manifest.files_for("invoices")) == 300
    assert any(line.startswith("billing invoices: 300 objects, 3 pages, 0 retries")
               for line in progress)
    assert not any(KEY in line for line in progress)
    # Nested lists with more than the embedded entries were paged.
    assert manifest.state["entities"]["invoice_lines"]["parents_paged"] == 1
    assert manifest.state["entities"]["subscription_items"]["parents_paged"] == 1

    subs = {r["subscription_id"]: r for r in landed(zone, FULL_DATE, "subscriptions")}
    assert subs["sub_cancel_a"]["cancellation_feedback"] == "too_expensive"
    assert subs["sub_cancel_a"]["cancellation_comment"] == 'Budget cut, "maybe" next year'
    assert subs["sub_cancel_b"]["cancellation_reason"] == "payment_failed"
    assert subs["sub_cancel_b"]["cancellation_feedback"] == ""  # null
    assert subs["sub_active"]["discount_percent_off"] == "20"
    assert subs["sub_active"]["cancel_at_period_end"] == "false"
    items = {r["item_id"]: r for r in landed(zone, FULL_DATE, "subscription_items")}
    assert items["si_trial_00"]["recurring_interval"] == "year"
    assert items["si_trial_00"]["unit_amount"] == "24000"
    assert items["si_active_01"]["product_id"] == "prod_addon"
    lines = {r["line_id"]: r for r in landed(zone, FULL_DATE, "invoice_lines")}
    assert lines["il_0000_00"]["discount_amount"] == "500"
    assert lines["il_0001_00"]["discount_amount"] == ""
    assert lines["il_0000_01"]["proration"] == "true"
    assert lines["il_0007_24"]["invoice_id"] == "in_0007"  # filled in from the parent
    assert all(r["invoice_id"] == r["line_id"][:7].replace("il_", "in_")
               for r in lines.values())
    customers = {r["customer_id"]: r for r in landed(zone, FULL_DATE, "customers")}
    assert customers["cus_000"]["crm_account_id"] == "1000"
    assert customers["cus_004"]["crm_account_id"] == ""
    assert customers["cus_002"]["delinquent"] == "true"


def test_extract_under_rate_limits_and_errors(server: BillingServer, zone: LandingZone,
                                              store: BillingStore) -> None:
    server.faults = Faults(rate_limit_every=3, retry_after_seconds=0, error_every=4)
    manifest = extract_billing(zone, FULL_DATE, server.url, KEY, page_size=40, **FAST)
    statuses = {record.status for record in server.requests_log}
    assert 429 in statuses and statuses & {500, 502, 503}
    failed = sum(1 for record in server.requests_log if record.status != 200)
    assert manifest.state["retries"] == failed > 0
    assert sum(e["retries"] for e in manifest.state["entities"].values()) == failed
    assert_lands_exactly(zone, FULL_DATE, expected_ids(store))


def test_retry_exhaustion_raises_clear_error(server: BillingServer, zone: LandingZone) -> None:
    server.faults = Faults(error_every=1)
    with pytest.raises(BillingApiError) as info:
        extract_billing(zone, FULL_DATE, server.url, KEY, max_attempts=3, **FAST)
    message = str(info.value)
    assert "GET /v1/customers" in message and "after 3 attempts" in message
    assert "HTTP 50" in message and KEY not in message
    assert info.value.attempts == 3 and server.request_count == 3
    assert not zone.batch("billing", FULL_DATE).exists()


def test_rate_limit_wait_is_capped(server: BillingServer, zone: LandingZone) -> None:
    server.faults = Faults(rate_limit_every=1, retry_after_seconds=60)
    with pytest.raises(BillingApiError, match="after 2 attempts; last error: HTTP 429"):
        extract_billing(zone, FULL_DATE, server.url, KEY, max_attempts=2, **FAST)
    assert server.request_count == 2  # waited max_backoff_seconds, not 60 s


def test_connection_errors_are_retried_then_reported(zone: LandingZone) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BillingApiError, match="after 2 attempts; last error: connection"):
        extract_billing(zone, FULL_DATE, f"http://127.0.0.1:{port}", KEY, max_attempts=2,
                        **FAST)


def test_client_errors_are_not_retried(server: BillingServer, zone: LandingZone) -> None:
    with pytest.raises(BillingApiError, match="HTTP 401: Invalid API Key provided") as info:
        extract_billing(zone, FULL_DATE, server.url, "sk_test_wrong", **FAST)
    assert info.value.status == 401 and "sk_test_wrong" not in str(info.value)
    assert server.request_count == 1


def test_incremental_windows(server: BillingServer, zone: LandingZone,
                             store: BillingStore) -> None:
    first = extract_billing(zone, FIRST_DATE, server.url, KEY, **FAST)
    assert first.extract_window == {"start": None, "end": "2026-03-11T00:00:00+00:00"}
    assert zone.previous_batch("billing", NEXT_DATE).logical_date == FIRST_DATE
    second = extract_billing(zone, NEXT_DATE, server.url, KEY, **FAST)
    assert second.extract_window == {"start": "2026-03-11T00:00:00+00:00",
                                     "end": "2026-03-12T00:00:00+00:00"}
    assert second.state["sync"] == "incremental"

    first_invoices = {r["invoice_id"] for r in landed(zone, FIRST_DATE, "invoices")}
    second_invoices = {r["invoice_id"] for r in landed(zone, NEXT_DATE, "invoices")}
    assert first_invoices == expected_ids(store, (0, ts("2026-03-11")))["invoices"]
    in_window = expected_ids(store, (ts("2026-03-11"), ts("2026-03-12")))
    assert second_invoices == in_window["invoices"] and len(second_invoices) == 20
    assert not first_invoices & second_invoices
    assert {r["line_id"] for r in landed(zone, NEXT_DATE, "invoice_lines")} == \
        in_window["invoice_lines"]
    assert landed(zone, NEXT_DATE, "refunds") == landed(zone, NEXT_DATE, "disputes") == []
    # Snapshots hold everything created before the window end.
    first_customers = {r["customer_id"] for r in landed(zone, FIRST_DATE, "customers")}
    assert "cus_005" not in first_customers and len(first_customers) == 5
    assert len(landed(zone, NEXT_DATE, "subscriptions")) == 8


def test_server_ignoring_created_filters_is_refused(server: BillingServer, zone: LandingZone,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    extract_billing(zone, FIRST_DATE, server.url, KEY, **FAST)
    monkeypatch.setattr(billing_server, "_parse_created", lambda params: {})
    with pytest.raises(BillingApiError, match="outside the requested window"):
        extract_billing(zone, NEXT_DATE, server.url, KEY, **FAST)
    assert not zone.batch("billing", NEXT_DATE).exists()


def test_rerun_is_idempotent(server: BillingServer, zone: LandingZone) -> None:
    first = extract_billing(zone, FIRST_DATE, server.url, KEY, **FAST)
    calls = server.request_count
    again = extract_billing(zone, FIRST_DATE, server.url, KEY, **FAST)
    assert again.to_json() == first.to_json()
    assert server.request_count == calls
    forced = extract_billing(zone, FIRST_DATE, server.url, KEY, force=True, **FAST)
    assert server.request_count > calls
    assert [(f.file, f.sha256, f.rows) for f in forced.files] == \
        [(f.file, f.sha256, f.rows) for f in first.files]


def landing_files(root: Path) -> dict[str, str | None]:
    """Every path under `root` with the sha256 of its bytes (None for a folder)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else None for p in sorted(root.rglob("*"))}


def test_forced_re_extract_failing_midway_keeps_the_committed_batch(
        server: BillingServer, zone: LandingZone, tmp_path: Path) -> None:
    first = extract_billing(zone, FIRST_DATE, server.url, KEY, **FAST)
    before = landing_files(tmp_path / "landing")

    server.faults = Faults(error_every=6)  # the API goes down a few pages in
    said: list[str] = []
    with pytest.raises(BillingApiError, match="after 1 attempts"):
        extract_billing(zone, FIRST_DATE, server.url, KEY, force=True, max_attempts=1,
                        progress=said.append, **FAST)

    assert any(line.startswith("billing customers: ") for line in said)  # files written
    assert "previous committed batch" in said[-1] and "kept unchanged" in said[-1]
    assert landing_files(tmp_path / "landing") == before
    batch = zone.batch("billing", FIRST_DATE)
    assert batch.manifest().to_json() == first.to_json()
    assert len(landed(zone, FIRST_DATE, "invoices")) == 270


def test_forced_re_extract_replaces_the_files_and_leaves_no_orphan_folder(
        server: BillingServer, zone: LandingZone) -> None:
    first = extract_billing(zone, FIRST_DATE, server.url, KEY, **FAST)
    day_folder = Path(zone.batch("billing", FIRST_DATE).url)
    assert first.folder and sorted(p.name for p in day_folder.iterdir()) == \
        sorted(["_manifest.json", first.folder])
    # an extract that crashed before its commit left a version folder behind
    crashed = zone.batch("billing", FIRST_DATE)
    crashed.begin()
    with crashed.writer(BILLING_ENTITIES[0]) as w:
        w.write_row([None] * len(BILLING_ENTITIES[0].columns))

    forced = extract_billing(zone, FIRST_DATE, server.url, KEY, force=True, **FAST)

    assert forced.folder not in (None, first.folder)
    assert sorted(p.name for p in day_folder.iterdir()) == ["_manifest.json", forced.folder]
    assert sorted(p.name for p in (day_folder / forced.folder).iterdir()) == \
        sorted(f.file for f in forced.files)
    batch = zone.batch("billing", FIRST_DATE)
    for f in batch.manifest().files:
        assert Path(batch.file_url(f.file)).parent == day_folder / forced.folder
        with batch.open_file(f.file) as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == f.sha256


def test_manifest_matches_files(server: BillingServer, zone: LandingZone) -> None:
    manifest = extract_billing(zone, FULL_DATE, server.url, KEY, **FAST)
    batch = zone.batch("billing", FULL_DATE)
    assert {f.entity for f in manifest.files} == {e.name for e in BILLING_ENTITIES}
    assert set(manifest.schema) == {e.name for e in BILLING_ENTITIES}
    for f in manifest.files:
        with batch.open_file(f.file) as fh:
            data = fh.read()
        assert hashlib.sha256(data).hexdigest() == f.sha256
        assert len(data) == f.bytes
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        entity = next(e for e in BILLING_ENTITIES if e.name == f.entity)
        assert rows[0] == entity.column_names
        assert len(rows) - 1 == f.rows


# ---------------------------------------------------------------------------------------
# Stripe API versions: the pinned shape and the current (basil and later) one
# ---------------------------------------------------------------------------------------
def versioned(server: BillingServer, path: str, version: str | None, **params: Any):
    headers = {"Authorization": f"Bearer {KEY}"}
    if version:
        headers["Stripe-Version"] = version
    return requests.get(server.url + path, params=params, headers=headers, timeout=5)


def one(server: BillingServer, path: str, id_: str, version: str | None,
        **params: Any) -> dict[str, Any]:
    body = versioned(server, path, version, limit=100, **params).json()
    return next(o for o in body["data"] if o["id"] == id_)


def test_server_answers_the_shape_of_the_version_asked(server: BillingServer) -> None:
    old = versioned(server, "/v1/invoices", BILLING_API_VERSION, limit=1)
    assert old.headers["Stripe-Version"] == BILLING_API_VERSION
    default = versioned(server, "/v1/invoices", None, limit=1)
    assert default.headers["Stripe-Version"] == billing_server.DEFAULT_API_VERSION
    assert default.headers["Stripe-Version"] >= "2025-03-31"  # the account default is current

    oldest = {"created[lte]": ts("2026-02-01")}
    inv = one(server, "/v1/invoices", "in_0000", BILLING_API_VERSION, **oldest)
    assert inv["subscription"] == "sub_active" and "parent" not in inv
    line = inv["lines"]["data"][1]
    assert line["price"]["id"] == "price_seat" and line["proration"] is True
    assert line["subscription"] == "sub_active"

    inv = one(server, "/v1/invoices", "in_0000", None, **oldest)
    assert "subscription" not in inv
    assert inv["parent"]["subscription_details"]["subscription"] == "sub_active"
    line = inv["lines"]["data"][1]
    assert not {"price", "subscription", "proration", "type"} & set(line)
    assert line["pricing"]["price_details"]["price"] == "price_seat"
    details = line["parent"]["subscription_item_details"]
    assert details["subscription"] == "sub_active" and details["proration"] is True
    paged = versioned(server, "/v1/invoices/in_0007/lines", "2025-03-31.basil",
                      starting_after="il_0007_09").json()["data"][0]
    assert "price" not in paged and paged["pricing"]["price_details"]["price"] == "price_seat"

    sub = one(server, "/v1/subscriptions", "sub_active", BILLING_API_VERSION, status="all")
    period = (sub["current_period_start"], sub["current_period_end"])
    assert "current_period_start" not in sub["items"]["data"][0]
    assert sub["discount"]["coupon"]["percent_off"] == 20
    sub = one(server, "/v1/subscriptions", "sub_active", None, status="all")
    assert "current_period_start" not in sub and "current_period_end" not in sub
    assert all((i["current_period_start"], i["current_period_end"]) == period
               for i in sub["items"]["data"])
    assert sub["discount"]["source"] == {"type": "coupon", "coupon": "WELCOME20"}
    expanded = one(server, "/v1/subscriptions", "sub_active", None, status="all",
                   **{"expand[]": "data.discount.source.coupon"})
    assert expanded["discount"]["source"]["coupon"]["percent_off"] == 20
    basil = one(server, "/v1/subscriptions", "sub_active", "2025-03-31.basil", status="all")
    assert basil["discount"]["coupon"]["id"] == "WELCOME20"  # clover changed discounts
    items = versioned(server, "/v1/subscription_items", None, subscription="sub_large",
                      limit=100).json()["data"]
    assert len(items) == 12 and all(i["current_period_start"] for i in items)

    prices = versioned(server, "/v1/prices", None, limit=100).json()
    assert {p["id"] for p in prices["data"]} == {
        "price_seat", "price_addon", "price_annual", *(f"price_mod{n}" for n in range(1, 13))}
    assert all(isinstance(p["created"], int) for p in prices["data"])
    assert [p["id"] for p in walk(server, "/v1/prices", limit=4)] == \
        [p["id"] for p in prices["data"]]  # the same paging contract as every list

    assert versioned(server, "/v1/customers", "yesterday").status_code == 400
    refused = versioned(server, "/v1/subscriptions", BILLING_API_VERSION,
                        **{"expand[]": "data.discount.source.coupon"})
    assert refused.status_code == 400  # no discount.source before clover


def _staged(zone: LandingZone, day: date) -> dict[str, dict[str, dict[str, str]]]:
    """Every landed row keyed by id, with each later-shape column folded into the pinned
    shape's column (as staging does) and the later-shape columns dropped."""
    prices = {r["price_id"]: r for r in landed(zone, day, "prices")}
    out: dict[str, dict[str, dict[str, str]]] = {}
    for entity in BILLING_ENTITIES:
        pairs = [(o, n) for table, o, n, _ in BILLING_SHAPES if table == entity.name]
        rows = {}
        for raw in landed(zone, day, entity.name):
            row = dict(raw)
            for old, new in pairs:
                if "." in new:  # from the line's price when the line names no price itself
                    price = prices.get(raw["pricing_price_id"], {}) if not raw["price_id"] \
                        else {}
                    row[old] = raw[old] or price.get(new.split(".")[1], "")
                else:
                    row[old] = raw[old] or raw[new]
                    row.pop(new)
            rows[raw[entity.primary_key[0]]] = row
        out[entity.name] = rows
    return out


def test_extract_pins_its_version_and_reads_both_shapes(server: BillingServer,
                                                        tmp_path: Path) -> None:
    pinned, current = (LandingZone(str(tmp_path / name)) for name in ("pinned", "current"))
    manifest = extract_billing(pinned, FULL_DATE, server.url, KEY, **FAST)
    assert manifest.state["api_version"] == BILLING_API_VERSION
    assert {r.stripe_version for r in server.requests_log} == {BILLING_API_VERSION}
    assert not any("expand" in r.path for r in server.requests_log)
    calls = server.request_count

    extract_billing(current, FULL_DATE, server.url, KEY, api_version=CLOVER_API_VERSION,
                    **FAST)
    later = server.requests_log[calls:]
    assert {r.stripe_version for r in later} == {CLOVER_API_VERSION}
    assert any(r.path.startswith("/v1/subscriptions") and "expand" in r.path for r in later)

    old, new = _staged(pinned, FULL_DATE), _staged(current, FULL_DATE)
    assert old == new
    # the later shape landed its values in the later columns
    lines = {r["line_id"]: r for r in landed(current, FULL_DATE, "invoice_lines")}
    assert lines["il_0000_01"]["price_id"] == lines["il_0000_01"]["subscription_id"] == ""
    assert lines["il_0000_01"]["pricing_price_id"] == "price_seat"
    assert lines["il_0000_01"]["parent_proration"] == "true"
    subs = {r["subscription_id"]: r for r in landed(current, FULL_DATE, "subscriptions")}
    assert subs["sub_active"]["current_period_start"] == ""
    assert subs["sub_active"]["item_current_period_start"] != ""
    assert subs["sub_active"]["discount_source_percent_off"] == "20"
    assert old["invoice_lines"]["il_0000_00"]["recurring_interval"] == "month"
    assert old["subscriptions"]["sub_active"]["discount_percent_off"] == "20"


# ---------------------------------------------------------------------------------------
# Small pieces
# ---------------------------------------------------------------------------------------
def test_paths() -> None:
    assert parse_path("discount_amounts[0].amount") == ("discount_amounts", 0, "amount")
    obj = {"a": {"b": [{"c": False}]}, "ref": {"id": "cus_1", "object": "customer"}}
    assert resolve(obj, parse_path("a.b[0].c")) is False
    assert resolve(obj, parse_path("a.b[1].c")) is None
    assert resolve(obj, parse_path("a.x.y")) is None
    assert resolve(obj, parse_path("ref")) == "cus_1"


def test_api_settings_from_connection() -> None:
    local = SimpleNamespace(conn_id="billing_api", conn_type="http", host="127.0.0.1",
                            port=12111, schema="", login="", password="sk_test_x")
    assert api_settings_from_connection(local) == ("http://127.0.0.1:12111", "sk_test_x")
    remote = SimpleNamespace(conn_id="billing_api", conn_type="http",
                             host="https://api.stripe.com", port=None, schema=None,
                             login=None, password="sk_live_y")
    assert api_settings_from_connection(remote) == ("https://api.stripe.com", "sk_live_y")
    with pytest.raises(ValueError, match="no API key"):
        api_settings_from_connection(SimpleNamespace(host="h", password=None, login=None))


def test_cli_requires_key(monkeypatch: pytest.MonkeyPatch, store_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("BILLING_API_KEY", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["--store", str(store_path)])
    assert info.value.code == 2
    assert "BILLING_API_KEY" in capsys.readouterr().err


def test_cli_serves_until_sigterm(store_path: Path) -> None:
    plugins = str(Path(__file__).resolve().parents[1] / "plugins")
    env = {**os.environ, "BILLING_API_KEY": KEY, "PYTHONPATH": plugins}
    proc = subprocess.Popen(
        [sys.executable, "-m", "defection_warehouse.sample.billing_server", "--store",
         str(store_path), "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split("listening on ", 1)[1].split()[0]
        r = requests.get(url + "/v1/customers", headers={"Authorization": f"Bearer {KEY}"},
                         timeout=5)
        assert r.status_code == 200 and len(r.json()["data"]) == 6
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert KEY not in line + out + err
