"""A local Stripe-compatible billing API over a `BillingStore` file, on loopback only
(unless a private container network is explicitly allowed: `allow_network`).

It serves the sample billing data to the extractor in the demo and the tests with Stripe's
list contract:

- ``GET /v1/customers``, ``/v1/subscriptions``, ``/v1/invoices``, ``/v1/prices``,
  ``/v1/charges``, ``/v1/refunds``, ``/v1/disputes``: newest first (ties by id
  descending), ``limit`` 1-100 (default 10), ``starting_after`` / ``ending_before``
  cursors (object ids), ``created`` / ``created[gt|gte|lt|lte]`` filters and the
  per-endpoint filters Stripe has (``customer``, ``subscription``, ``charge``, ``status``,
  ``email``, ``product``, ``currency``). Subscriptions without ``status`` exclude canceled
  ones; ``status=all`` lists every status.
- ``GET /v1/invoices/{id}/lines`` and ``GET /v1/subscription_items?subscription=sub_...``:
  the nested lists. Objects in the top-level lists embed at most 10 lines / items with
  ``has_more`` set when there are more, as Stripe does.
- API versions: each request is answered in the shape of its ``Stripe-Version`` header,
  and without one in the account's default, the current shape (`DEFAULT_API_VERSION`).
  The store keeps the objects as the sample writes them, in the shape of the versions
  before 2025-03-31.basil; `present` converts them on the way out. From basil on:
  subscriptions lose ``current_period_start/end`` (each item has its own), invoices lose
  ``subscription`` (``parent.subscription_details.subscription``), ``charge`` and
  ``paid``, invoice lines lose ``price``, ``subscription``, ``subscription_item``,
  ``proration`` and ``type`` (``pricing.price_details`` and
  ``parent.subscription_item_details``). From 2025-09-30.clover on a discount names its
  coupon in ``source.coupon`` instead of embedding it (``expand[]=data.discount.source.
  coupon`` on the subscription list embeds it again). Not emulated: basil's removal of
  ``invoice`` from charges (the server keeps it in every version). The answer carries the
  version in a ``Stripe-Version`` header.
- Prices: the sample embeds its prices in subscription items and invoice lines; on start
  the server adds a ``price`` object for each price the stored subscriptions use
  (`BillingStore.add_missing_prices`), created with the first subscription using it.
- Auth: ``Authorization: Bearer <key>`` or HTTP basic auth with the key as user name.
  Errors use Stripe's body shape ``{"error": {"type": ..., "message": ...}}``.

Faults for resilience tests and demos are deterministic (counter-based): every Nth request
gets a 429 with ``Retry-After``, every Mth a 500/502/503 in rotation, and each response can
be delayed. They can be switched at runtime by assigning ``server.faults``.

CLI (the API key comes from the environment, never from the command line)::

    BILLING_API_KEY=sk_test_... python -m defection_warehouse.sample.billing_server \\
        --store .data/sample/billing.sqlite [--port 12111] [--rate-limit-every N] \\
        [--error-every N] [--slow-ms N]

In docker-compose.yml's sample profile it runs in a container of its own and listens on
the compose network (``--host 0.0.0.0 --allow-network``); no port is published.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from defection_warehouse.sample.billing_store import BillingStore
from defection_warehouse.sources.contracts import BASIL_API_VERSION, CLOVER_API_VERSION

log = logging.getLogger(__name__)

API_KEY_ENV = "BILLING_API_KEY"
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
# Stripe embeds the first few entries of a nested list (invoice lines, subscription items)
# in the parent object and flags `has_more`; the rest is read from the nested endpoint.
EMBEDDED_LIST_LIMIT = 10
SCAN_CHUNK = 500
LOG_CAPACITY = 100_000

SUBSCRIPTION_STATUSES = (
    "active", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired",
    "trialing", "paused",
)
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
ERROR_ROTATION = (500, 502, 503)
_COMMON_LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "created",
                                 "expand"})
_CREATED_OPS = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True)
class Faults:
    """Deterministic fault injection; 0 switches a fault off."""

    rate_limit_every: int = 0  # every Nth request answers 429
    retry_after_seconds: float = 1  # value of the 429's Retry-After header
    error_every: int = 0  # every Nth request answers 500, 502, 503 in turn
    slow_ms: int = 0  # delay before each response

    def __post_init__(self) -> None:
        for name in ("rate_limit_every", "error_every", "slow_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"Faults.{name} must be a whole number >= 0, got {value!r}")
        if self.retry_after_seconds < 0:
            raise ValueError("Faults.retry_after_seconds must be >= 0")


class RequestRecord(NamedTuple):
    method: str
    path: str  # request target, query string included
    status: int
    stripe_version: str | None = None  # the request's Stripe-Version header, if any


class ApiError(Exception):
    """An error answered in Stripe's error shape."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}


def _bad_param(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, code="parameter_invalid", param=param)


# ---------------------------------------------------------------------------------------
# API versions
# ---------------------------------------------------------------------------------------
# The account default: what a request without a Stripe-Version header gets.
DEFAULT_API_VERSION = CLOVER_API_VERSION
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
# The only expansion this server knows (clover no longer embeds a discount's coupon).
_EXPANDABLE = {"/v1/subscriptions": "data.discount.source.coupon"}


@dataclass(frozen=True)
class Shape:
    """What a response looks like: the version asked for, and the shape changes it has."""

    version: str
    basil: bool  # 2025-03-31.basil and later
    clover: bool  # 2025-09-30.clover and later
    expand: frozenset[str] = frozenset()

    @classmethod
    def of(cls, version: str) -> Shape:
        if not _API_VERSION.fullmatch(version):
            raise ApiError(400, f"Invalid Stripe API version: {version}",
                           code="api_version_invalid")
        day = version[:10]
        return cls(version, day >= BASIL_API_VERSION[:10], day >= CLOVER_API_VERSION[:10])


def _expansions(path: str, params: dict[str, str], shape: Shape) -> Shape:
    wanted = params.get("expand[]")
    if wanted is None:
        if any(name.startswith("expand") for name in params):
            raise _bad_param("Pass expansions as expand[]=...", "expand")
        return shape
    if wanted != _EXPANDABLE.get(path) or not shape.clover:
        raise _bad_param(f"This property cannot be expanded ({wanted}).", "expand")
    return Shape(shape.version, shape.basil, shape.clover, frozenset({wanted}))


def present(obj: dict[str, Any], shape: Shape) -> dict[str, Any]:
    """A stored object (pre-basil shape) as `shape` has it; nested lists included."""
    kind = obj.get("object")
    if kind == "subscription":
        return _present_subscription(obj, shape)
    if kind == "invoice":
        return _present_invoice(obj, shape)
    if kind == "line_item":
        return _present_line(obj, shape)
    return obj


def _with_list(obj: dict[str, Any], field: str,
               convert: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    nested = obj.get(field)
    if not isinstance(nested, dict) or not isinstance(nested.get("data"), list):
        return obj
    return {**obj, field: {**nested, "data": [convert(i) for i in nested["data"]]}}


def present_item(item: dict[str, Any], subscription: dict[str, Any],
                 shape: Shape) -> dict[str, Any]:
    """A subscription item: from basil on it carries its subscription's period."""
    if not shape.basil:
        return item
    return {"current_period_start": subscription.get("current_period_start"),
            "current_period_end": subscription.get("current_period_end"), **item}


def _present_subscription(sub: dict[str, Any], shape: Shape) -> dict[str, Any]:
    out = _with_list(sub, "items", lambda item: present_item(item, sub, shape))
    if shape.basil:
        out = {k: v for k, v in out.items()
               if k not in ("current_period_start", "current_period_end")}
    discount = out.get("discount")
    if shape.clover and isinstance(discount, dict) and isinstance(discount.get("coupon"), dict):
        coupon = discount["coupon"]
        if _EXPANDABLE["/v1/subscriptions"] not in shape.expand:
            coupon = coupon["id"]
        out["discount"] = {**{k: v for k, v in discount.items() if k != "coupon"},
                           "source": {"type": "coupon", "coupon": coupon}}
    return out


_INVOICE_FIELDS_GONE = ("subscription", "subscription_details", "subscription_proration_date",
                        "quote", "charge", "paid", "paid_out_of_band", "payment_intent")


def _present_invoice(invoice: dict[str, Any], shape: Shape) -> dict[str, Any]:
    out = _with_list(invoice, "lines", lambda line: _present_line(line, shape))
    if not shape.basil:
        return out
    out = {k: v for k, v in out.items() if k not in _INVOICE_FIELDS_GONE}
    sub = invoice.get("subscription")
    out["parent"] = None if not sub else {
        "type": "subscription_details", "quote_details": None,
        "subscription_details": {"subscription": sub, "metadata": {},
                                 "subscription_proration_date": None},
    }
    return out


_LINE_FIELDS_GONE = ("price", "plan", "subscription", "subscription_item", "proration",
                     "proration_details", "type", "invoice_item", "tax_amounts",
                     "amount_excluding_tax", "unit_amount_excluding_tax")


def _present_line(line: dict[str, Any], shape: Shape) -> dict[str, Any]:
    if not shape.basil:
        return line
    out = {k: v for k, v in line.items() if k not in _LINE_FIELDS_GONE}
    price = line.get("price")
    out["pricing"] = None if not isinstance(price, dict) else {
        "type": "price_details",
        "price_details": {"price": price.get("id"), "product": price.get("product")},
        "unit_amount_decimal": None if price.get("unit_amount") is None
        else str(price["unit_amount"]),
    }
    details = {"proration": bool(line.get("proration")),
               "proration_details": {"credited_items": None}, "invoice_item": None}
    if line.get("type", "subscription") == "subscription" and line.get("subscription"):
        out["parent"] = {"type": "subscription_item_details", "invoice_item_details": None,
                         "subscription_item_details": {
                             **details, "subscription": line["subscription"],
                             "subscription_item": line.get("subscription_item")}}
    else:
        out["parent"] = {"type": "invoice_item_details", "subscription_item_details": None,
                         "invoice_item_details": {
                             **details, "invoice_item": line.get("invoice_item"),
                             "subscription": line.get("subscription")}}
    return out


# ---------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ListSpec:
    object_type: str
    filters: tuple[str, ...]  # extra filters on a top-level field of the object


_TOP_LEVEL: dict[str, _ListSpec] = {
    "/v1/customers": _ListSpec("customer", ("email",)),
    "/v1/subscriptions": _ListSpec("subscription", ("customer", "status")),
    "/v1/invoices": _ListSpec("invoice", ("customer", "subscription", "status")),
    "/v1/prices": _ListSpec("price", ("product", "currency")),
    "/v1/charges": _ListSpec("charge", ("customer",)),
    "/v1/refunds": _ListSpec("refund", ("charge",)),
    "/v1/disputes": _ListSpec("dispute", ("charge",)),
}


def _key(obj: dict[str, Any]) -> tuple[int, str]:
    return int(obj["created"]), str(obj["id"])


def _parse_limit(params: dict[str, str]) -> int:
    raw = params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise _bad_param(f"Invalid integer: {raw}", "limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad_param(
            f"Invalid limit: must be between 1 and {MAX_LIMIT}, got {limit}", "limit"
        )
    return limit


def _parse_created(params: dict[str, str]) -> dict[str, int]:
    created: dict[str, int] = {}
    for name, raw in params.items():
        ops: tuple[str, ...]
        if name == "created":
            ops = ("gte", "lte")
        elif name.startswith("created[") and name.endswith("]") and name[8:-1] in _CREATED_OPS:
            ops = (name[8:-1],)
        else:
            continue
        try:
            value = int(raw)
        except ValueError:
            raise _bad_param(f"Invalid integer: {raw}", name) from None
        for op in ops:
            created[op] = value
    return created


def _check_params(params: dict[str, str], allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    for name in params:
        base = name.split("[", 1)[0]
        if base not in allowed:
            raise ApiError(400, f"Received unknown parameter: {name}",
                           code="parameter_unknown", param=name)
        if base == "created" and name != "created" and name[8:-1] not in _CREATED_OPS:
            raise ApiError(400, f"Received unknown parameter: {name}",
                           code="parameter_unknown", param=name)
    if "starting_after" in params and "ending_before" in params:
        raise _bad_param("You may only specify one of these parameters: "
                         "ending_before, starting_after.")


def _missing(kind: str, id_: str, param: str) -> ApiError:
    return ApiError(400, f"No such {kind}: '{id_}'", code="resource_missing", param=param)


def _store_page(
    store: BillingStore,
    type_: str,
    *,
    limit: int,
    after: tuple[int, str] | None,
    created: dict[str, int],
    statuses: list[str] | None,
    predicate: Callable[[dict[str, Any]], bool] | None,
) -> tuple[list[dict[str, Any]], bool]:
    """One page newest first, with an optional predicate applied while scanning."""
    if predicate is None:
        return store.page(type_, limit=limit, starting_after=after, created=created or None,
                          statuses=statuses)
    found: list[dict[str, Any]] = []
    cursor = after
    while True:
        chunk, more = store.page(type_, limit=SCAN_CHUNK, starting_after=cursor,
                                 created=created or None, statuses=statuses)
        for obj in chunk:
            if predicate(obj):
                found.append(obj)
                if len(found) > limit:
                    return found[:limit], True
        if not more or not chunk:
            return found, False
        cursor = _key(chunk[-1])


def _store_page_before(
    store: BillingStore,
    type_: str,
    *,
    limit: int,
    before: tuple[int, str],
    created: dict[str, int],
    statuses: list[str] | None,
    predicate: Callable[[dict[str, Any]], bool] | None,
) -> tuple[list[dict[str, Any]], bool]:
    """The `limit` objects just newer than `before` (newest first), for `ending_before`."""
    bounded = dict(created)
    bounded["gte"] = max(bounded.get("gte", before[0]), before[0])
    window: deque[dict[str, Any]] = deque(maxlen=limit + 1)
    cursor = None
    while True:
        chunk, more = store.page(type_, limit=SCAN_CHUNK, starting_after=cursor,
                                 created=bounded, statuses=statuses)
        for obj in chunk:
            if _key(obj) > before and (predicate is None or predicate(obj)):
                window.append(obj)
        if not more or not chunk:
            break
        cursor = _key(chunk[-1])
    items = list(window)
    return items[-limit:], len(items) > limit


def _embed_nested(obj: dict[str, Any]) -> dict[str, Any]:
    """Trim nested lists to what Stripe embeds, with `has_more` and the nested URL."""
    if obj.get("object") == "invoice":
        field, url = "lines", f"/v1/invoices/{obj['id']}/lines"
    elif obj.get("object") == "subscription":
        field, url = "items", f"/v1/subscription_items?subscription={obj['id']}"
    else:
        return obj
    nested = obj.get(field)
    if not isinstance(nested, dict) or not isinstance(nested.get("data"), list):
        return obj
    data = nested["data"]
    out = dict(obj)
    out[field] = {
        **nested,
        "object": "list",
        "data": data[:EMBEDDED_LIST_LIMIT],
        "has_more": len(data) > EMBEDDED_LIST_LIMIT,
        "total_count": len(data),
        "url": url,
    }
    return out


def _list_top_level(store: BillingStore, path: str, params: dict[str, str],
                    shape: Shape) -> dict[str, Any]:
    spec = _TOP_LEVEL[path]
    _check_params(params, _COMMON_LIST_PARAMS | set(spec.filters))
    shape = _expansions(path, params, shape)
    limit = _parse_limit(params)
    created = _parse_created(params)

    statuses: list[str] | None = None
    status = params.get("status")
    if spec.object_type == "subscription":
        if status is None:
            statuses = [s for s in SUBSCRIPTION_STATUSES if s != "canceled"]
        elif status == "all":
            statuses = None
        elif status == "ended":
            statuses = ["canceled", "incomplete_expired"]
        elif status in SUBSCRIPTION_STATUSES:
            statuses = [status]
        else:
            raise _bad_param(
                f"Invalid status: must be one of {', '.join(SUBSCRIPTION_STATUSES)}, "
                f"all or ended", "status")
    elif status is not None:
        if status not in INVOICE_STATUSES:
            raise _bad_param(
                f"Invalid status: must be one of {', '.join(INVOICE_STATUSES)}", "status")
        statuses = [status]

    field_filters = {f: params[f] for f in spec.filters if f != "status" and f in params}
    predicate = None
    if field_filters:
        def predicate(obj: dict[str, Any]) -> bool:
            for name, wanted in field_filters.items():
                value = obj.get(name)
                if isinstance(value, dict):  # an expanded reference
                    value = value.get("id")
                if value != wanted:
                    return False
            return True

    def cursor(param: str) -> tuple[int, str] | None:
        id_ = params.get(param)
        if id_ is None:
            return None
        obj = store.get(spec.object_type, id_)
        if obj is None:
            raise _missing(spec.object_type, id_, param)
        return _key(obj)

    before = cursor("ending_before")
    if before is not None:
        data, has_more = _store_page_before(store, spec.object_type, limit=limit,
                                            before=before, created=created,
                                            statuses=statuses, predicate=predicate)
    else:
        data, has_more = _store_page(store, spec.object_type, limit=limit,
                                     after=cursor("starting_after"), created=created,
                                     statuses=statuses, predicate=predicate)
    return {"object": "list", "url": path, "has_more": has_more,
            "data": [present(_embed_nested(o), shape) for o in data]}


def _list_nested(items: list[dict[str, Any]], url: str, params: dict[str, str],
                 allowed: Iterable[str]) -> dict[str, Any]:
    """Page a nested list kept in its parent, in the parent's order."""
    _check_params(params, set(allowed) | {"limit", "starting_after", "ending_before"})
    limit = _parse_limit(params)
    ids = [str(i.get("id")) for i in items]
    if "starting_after" in params:
        try:
            start = ids.index(params["starting_after"]) + 1
        except ValueError:
            raise _missing("object", params["starting_after"], "starting_after") from None
        page = items[start:start + limit]
        has_more = start + limit < len(items)
    elif "ending_before" in params:
        try:
            stop = ids.index(params["ending_before"])
        except ValueError:
            raise _missing("object", params["ending_before"], "ending_before") from None
        page = items[max(stop - limit, 0):stop]
        has_more = stop - limit > 0
    else:
        page = items[:limit]
        has_more = limit < len(items)
    return {"object": "list", "url": url, "has_more": has_more, "data": page}


def _nested_data(parent: dict[str, Any], field: str) -> list[dict[str, Any]]:
    nested = parent.get(field)
    if isinstance(nested, dict) and isinstance(nested.get("data"), list):
        return nested["data"]
    return []


def handle_get(store: BillingStore, path: str, params: dict[str, str],
               shape: Shape | None = None) -> dict[str, Any]:
    """Answer one authenticated GET in `shape` (default: the account default version);
    raises `ApiError` for anything Stripe would refuse."""
    shape = shape or Shape.of(DEFAULT_API_VERSION)
    if path in _TOP_LEVEL:
        return _list_top_level(store, path, params, shape)
    if path == "/v1/subscription_items":
        sub_id = params.get("subscription")
        if not sub_id:
            raise ApiError(400, "Missing required param: subscription.",
                           code="parameter_missing", param="subscription")
        sub = store.get("subscription", sub_id)
        if sub is None:
            raise _missing("subscription", sub_id, "subscription")
        items = [present_item(i, sub, shape) for i in _nested_data(sub, "items")]
        return _list_nested(items, f"/v1/subscription_items?subscription={sub_id}", params,
                            {"subscription"})
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["", "v1", "invoices"] and parts[4] == "lines":
        invoice_id = unquote(parts[3])
        invoice = store.get("invoice", invoice_id)
        if invoice is None:
            raise ApiError(404, f"No such invoice: '{invoice_id}'", code="resource_missing",
                           param="id")
        lines = [present(line, shape) for line in _nested_data(invoice, "lines")]
        return _list_nested(lines, path, params, ())
    raise ApiError(404, f"Unrecognized request URL (GET: {path}).")


# ---------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so one store connection serves many requests
    server_version = "DefectionWarehouseBilling/1"
    timeout = 60  # close idle keep-alive connections
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)
        self.store: BillingStore | None = None
        self.number = 0

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.store is not None:
                self.store.close()
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- dispatch ------------------------------------------------------------------
    def do_GET(self) -> None:
        owner = self.server.owner
        self.number = owner._next_request()
        faults = owner.faults
        try:
            self._authenticate(owner._api_key)
            fault, faults = owner._fault_for()
            if fault is not None:
                self._respond_fault(fault, faults)
                return
            shape = Shape.of(self.headers.get("Stripe-Version", "").strip()
                             or owner.default_api_version)
            split = urlsplit(self.path)
            params = self._params(split.query)
            if self.store is None:
                self.store = BillingStore(owner.store_path)
            body = handle_get(self.store, split.path.rstrip("/") or "/", params, shape)
            self._respond(200, body, faults, {"Stripe-Version": shape.version})
        except ApiError as exc:
            self._respond(exc.status, exc.body(), faults, exc.headers)
        except OSError:
            raise  # the client went away; nothing to answer
        except Exception:
            log.exception("billing server failed on %s", self.path)
            self._respond(500, ApiError(500, "An unexpected error occurred.",
                                        type_="api_error").body(), faults)

    def _other_method(self) -> None:
        self.number = self.server.owner._next_request()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
            self.close_connection = True
        if length > 0:
            self.rfile.read(length)
        self._respond(405, ApiError(
            405, f"Unrecognized request URL ({self.command}: {urlsplit(self.path).path}). "
                 "This server only answers GET list requests.").body(), Faults())

    do_POST = do_PUT = do_PATCH = do_DELETE = _other_method

    # -- pieces --------------------------------------------------------------------
    def _authenticate(self, api_key: str) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        supplied: str | None = None
        if scheme.lower() == "bearer":
            supplied = value.strip()
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            supplied = decoded.split(":", 1)[0]
        challenge = {"WWW-Authenticate": 'Basic realm="Billing"'}
        if not supplied:
            raise ApiError(401, "You did not provide an API key. Provide it in the "
                                "Authorization header, using Bearer auth "
                                "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                           headers=challenge)
        if not hmac.compare_digest(supplied.encode("utf-8"), api_key.encode("utf-8")):
            raise ApiError(401, "Invalid API Key provided.", code="api_key_invalid",
                           headers=challenge)

    @staticmethod
    def _params(query: str) -> dict[str, str]:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            raise _bad_param("Malformed query string.") from None
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                raise _bad_param(f"Parameter {name} was given more than once.", name)
            params[name] = value
        return params

    def _respond_fault(self, fault: int, faults: Faults) -> None:
        if fault == 429:
            retry_after = faults.retry_after_seconds
            header = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            self._respond(429, ApiError(
                429, "Too many requests hit the API too quickly.", code="rate_limit",
                type_="invalid_request_error").body(), faults, {"Retry-After": header})
        elif fault == 502:
            # What a proxy in front of an API answers: not JSON.
            self._respond_raw(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                              "text/html", faults)
        else:
            message = ("An unexpected error occurred." if fault == 500
                       else "The service is temporarily unavailable.")
            self._respond(fault, ApiError(fault, message, type_="api_error").body(), faults)

    def _respond(self, status: int, body: dict[str, Any], faults: Faults,
                 headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        self._respond_raw(status, payload, "application/json", faults, headers)

    def _respond_raw(self, status: int, payload: bytes, content_type: str, faults: Faults,
                     headers: dict[str, str] | None = None) -> None:
        if faults.slow_ms:
            time.sleep(faults.slow_ms / 1000)
        self.server.owner._record(RequestRecord(self.command, self.path, status,
                                                self.headers.get("Stripe-Version")))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", f"req_{self.number:08d}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections are shut down by `stop()`
    owner: BillingServer


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BillingServer:
    """The local billing API on a background thread.

    ``with BillingServer(path, key) as server: requests.get(server.url + "/v1/customers")``
    """

    def __init__(self, store_path: str | Path, api_key: str, host: str = "127.0.0.1",
                 port: int = 0, faults: Faults | None = None,
                 default_api_version: str = DEFAULT_API_VERSION, *,
                 allow_network: bool = False) -> None:
        """`host` must be a loopback address unless `allow_network`: the API is plain HTTP
        with a test key, meant for a private network such as a compose project's."""
        self.store_path = Path(store_path)
        if not self.store_path.is_file():
            raise FileNotFoundError(f"billing store not found: {self.store_path}")
        if not api_key:
            raise ValueError("the billing server needs a non-empty API key")
        if not allow_network and not _is_loopback(host):
            raise ValueError(f"the billing server listens on loopback only, not on {host!r} "
                             "(allow_network, --allow-network, for a private network)")
        self.host = host
        self.port = port
        self.default_api_version = Shape.of(default_api_version).version
        self._api_key = api_key
        self._faults = faults or Faults()
        self._lock = threading.Lock()
        self._requests = 0
        self._fault_requests = 0
        self._errors = 0
        self._log: deque[RequestRecord] = deque(maxlen=LOG_CAPACITY)
        self._connections: set[socket.socket] = set()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # keeps the key out of reprs and tracebacks
        state = self.url if self._httpd else "stopped"
        return f"BillingServer({str(self.store_path)!r}, {state})"

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> BillingServer:
        if self._httpd is not None:
            raise RuntimeError("billing server already started")
        with BillingStore(self.store_path) as store:
            added = store.add_missing_prices()
        if added:
            log.info("billing API: added %d price objects from the stored items", added)
        cls = _HttpServer6 if ":" in self.host else _HttpServer
        httpd = cls((self.host, self.port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="billing-server", daemon=True)
        self._thread.start()
        log.info("billing API serving %s on %s", self.store_path, self.url)
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> BillingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("billing server is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- faults and bookkeeping ----------------------------------------------------
    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        """Switch faults; their counters restart so the Nth request from now is hit."""
        with self._lock:
            self._faults = value
            self._fault_requests = 0
            self._errors = 0

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._requests

    @property
    def requests_log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def status_counts(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for record in self.requests_log:
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    def _next_request(self) -> int:
        with self._lock:
            self._requests += 1
            return self._requests

    def _fault_for(self) -> tuple[int | None, Faults]:
        """The fault (status) this authenticated request gets, if any, and the settings."""
        with self._lock:
            faults = self._faults
            self._fault_requests += 1
            n = self._fault_requests
            if faults.rate_limit_every and n % faults.rate_limit_every == 0:
                return 429, faults
            if faults.error_every and n % faults.error_every == 0:
                self._errors += 1
                return ERROR_ROTATION[(self._errors - 1) % len(ERROR_ROTATION)], faults
        return None, faults

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m defection_warehouse.sample.billing_server",
        description="Serve a billing store as a local Stripe-compatible API on loopback. "
                    f"The API key is read from the {API_KEY_ENV} environment variable.",
    )
    parser.add_argument("--store", required=True, help="billing store (SQLite) to serve")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind: loopback unless --allow-network")
    parser.add_argument("--allow-network", action="store_true",
                        help="allow a non-loopback --host such as 0.0.0.0, for a private "
                             "network only (a container network): the API is plain HTTP")
    parser.add_argument("--port", type=int, default=12111, help="port (0 picks a free one)")
    parser.add_argument("--rate-limit-every", type=int, default=0, metavar="N",
                        help="answer every Nth request with 429")
    parser.add_argument("--retry-after", type=float, default=1, metavar="SECONDS",
                        help="Retry-After of those 429 answers (default 1)")
    parser.add_argument("--error-every", type=int, default=0, metavar="N",
                        help="answer every Nth request with 500/502/503 in turn")
    parser.add_argument("--slow-ms", type=int, default=0, metavar="N",
                        help="delay every response by N milliseconds")
    args = parser.parse_args(argv)

    api_key = os.environ.get(API_KEY_ENV, "")
    if not api_key:
        parser.exit(2, f"error: set the {API_KEY_ENV} environment variable to the API key "
                       "clients must send\n")
    try:
        faults = Faults(rate_limit_every=args.rate_limit_every,
                        retry_after_seconds=args.retry_after,
                        error_every=args.error_every, slow_ms=args.slow_ms)
        server = BillingServer(args.store, api_key, host=args.host, port=args.port,
                               faults=faults, allow_network=args.allow_network)
        server.start()
    except (OSError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")

    stopping = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"billing API listening on {server.url} (store {server.store_path})", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
    print(f"billing API stopped after {server.request_count} requests", flush=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(main())
