"""Billing extract: page a Stripe-compatible API into one landing batch per logical date.

The batch for logical date D covers the data interval [D 00:00 UTC, D+1 00:00 UTC).

- Snapshot entities (customers, subscriptions listed with ``status=all`` and their items)
  hold everything created before the window end, in its state at extract time.
- Incremental entities (invoices and their lines, charges, refunds, disputes) hold what
  was created in ``[start, end)``, where ``start`` is the end of the previous committed
  billing batch; with no earlier batch the extract is a full initial sync (no lower bound).
- Nested lists (subscription ``items.data``, invoice ``lines.data``) are read from the
  parent object and, when the embedded list says ``has_more``, paged from the nested
  endpoint.

Every request pins the API version with a ``Stripe-Version`` header (`api_version`, by
default the version the contracts are written for, `BILLING_API_VERSION`). The contracts
read both that shape and the one of 2025-03-31.basil and later, so a newer version may be
pinned too; from 2025-09-30.clover on, subscriptions are listed with their discount's
coupon expanded (clover no longer expands it).

The batch lands as ``<landing>/billing/<D>/v<UTC stamp>-<uuid>/<entity>.csv`` under a
manifest ``<landing>/billing/<D>/_manifest.json`` written last (see
`defection_warehouse.sources.landing`). A committed batch is returned as it is unless ``force`` is
set; a forced re-extract writes a new version folder and replaces the committed batch only
when it commits, so one that fails (an API outage) leaves the committed batch byte for byte
as it was, says so, and raises.

HTTP 429 waits for ``Retry-After``; 5xx answers, connection errors and timeouts back off
exponentially with jitter; other errors stop the extract with a `BillingApiError`. The API
key is sent only in the Authorization header and never appears in messages or the
manifest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from defection_warehouse import __version__
from defection_warehouse.sources.contracts import (
    BILLING_API_VERSION,
    BILLING_ENTITIES,
    CLOVER_API_VERSION,
    Entity,
)
from defection_warehouse.sources.landing import LandingError, LandingZone, Manifest

log = logging.getLogger(__name__)

SOURCE = "billing"
MAX_PAGE_SIZE = 100

# Extra list parameters per endpoint: canceled subscriptions are listed only with status=all.
LIST_PARAMS: dict[str, dict[str, str]] = {"subscriptions": {"status": "all"}}
# From clover on a discount names its coupon (discount.source.coupon) instead of embedding
# it; expanding it keeps the coupon's percent and amount off.
CLOVER_EXPAND: dict[str, str] = {"subscriptions": "data.discount.source.coupon"}


def list_params(entity: str, api_version: str) -> dict[str, str]:
    """The extra parameters of an entity's list request under `api_version`."""
    params = dict(LIST_PARAMS.get(entity, {}))
    if entity in CLOVER_EXPAND and api_version[:10] >= CLOVER_API_VERSION[:10]:
        params["expand[]"] = CLOVER_EXPAND[entity]
    return params
# The field of a nested object that points back at its parent; filled in from the parent
# when an API version leaves it out.
PARENT_LINK: dict[str, str] = {"subscription_items": "subscription", "invoice_lines": "invoice"}


def _nested_endpoint(entity: str, parent_id: str) -> tuple[str, dict[str, str]]:
    if entity == "subscription_items":
        return "/v1/subscription_items", {"subscription": parent_id}
    if entity == "invoice_lines":
        return f"/v1/invoices/{quote(parent_id, safe='')}/lines", {}
    raise ValueError(f"no nested endpoint known for billing entity {entity!r}")


class BillingApiError(RuntimeError):
    """The billing API refused a request, or kept failing after every retry."""

    def __init__(self, message: str, *, endpoint: str, status: int | None = None,
                 api_message: str | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.api_message = api_message
        self.attempts = attempts


class _Transient(Exception):
    """A failure worth retrying: 429, 5xx, connection error or timeout."""

    def __init__(self, description: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.retry_after = retry_after


# ---------------------------------------------------------------------------------------
# Flattening
# ---------------------------------------------------------------------------------------
_SEGMENT = re.compile(r"^([^\[\]]+)((?:\[\d+\])*)$")
_INDEX = re.compile(r"\[(\d+)\]")


def parse_path(path: str) -> tuple[str | int, ...]:
    """``"discount_amounts[0].amount"`` -> ``("discount_amounts", 0, "amount")``."""
    steps: list[str | int] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if not match:
            raise ValueError(f"bad JSON path {path!r} at {segment!r}")
        steps.append(match.group(1))
        steps.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(steps)


def resolve(obj: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at `steps`, or None when any step is missing."""
    value = obj
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return None
            value = value[step]
        else:
            if not isinstance(value, dict):
                return None
            value = value.get(step)
        if value is None:
            return None
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]  # an expanded reference: keep the id like the unexpanded form
    if isinstance(value, dict | list):
        raise ValueError(f"path {'.'.join(map(str, steps))} holds a {type(value).__name__}, "
                         "not a single value")
    return value


class _Flattener:
    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.paths = []
        for column in entity.columns:
            if not column.path:
                raise ValueError(f"billing.{entity.name}.{column.name} has no API path")
            self.paths.append(parse_path(column.path))

    def row(self, obj: dict[str, Any]) -> list[Any]:
        try:
            return [resolve(obj, steps) for steps in self.paths]
        except ValueError as exc:
            raise BillingApiError(
                f"billing {self.entity.name} object {obj.get('id')!r} does not fit the "
                f"contract: {exc}", endpoint=self.entity.endpoint or self.entity.name,
            ) from exc


# ---------------------------------------------------------------------------------------
# HTTP client
# ---------------------------------------------------------------------------------------
@dataclass
class EntityStats:
    mode: str
    pages: int = 0
    objects: int = 0
    retries: int = 0
    duplicates_skipped: int = 0
    parents_paged: int = 0  # nested only: parents whose embedded list had more entries
    created_gte: int | None = None
    created_lt: int | None = None

    def as_state(self) -> dict[str, Any]:
        return asdict(self)


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _api_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        return text[:200] or response.reason or "no message"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"])
    return str(body)[:200]


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Wait:
    """Honour Retry-After on 429 (capped); otherwise exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.maximum = maximum
        self.backoff = wait_exponential_jitter(initial=initial, max=maximum,
                                               jitter=initial)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.maximum)
        return self.backoff(state)


class BillingClient:
    """GETs against a Stripe-compatible API with retries, counted per entity."""

    def __init__(self, base_url: str, api_key: str, *, page_size: int = MAX_PAGE_SIZE,
                 api_version: str = BILLING_API_VERSION, max_attempts: int = 8,
                 backoff_seconds: float = 0.5,
                 max_backoff_seconds: float = 30, timeout_seconds: float = 30,
                 session: requests.Session | None = None) -> None:
        if not base_url:
            raise ValueError("billing API base URL is empty")
        if not api_key:
            raise ValueError("billing API key is empty")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not api_version:
            raise ValueError("billing API version is empty")
        self.api_version = api_version
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):  # endpoint paths carry the version
            self.base_url = self.base_url[:-3]
        self.page_size = page_size
        self.max_attempts = max_attempts
        self.timeout = timeout_seconds
        self._wait = _Wait(backoff_seconds, max_backoff_seconds)
        self.session = session or requests.Session()
        self.session.headers.update({
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": f"defection-warehouse/{__version__}",
            "Stripe-Version": api_version,
        })
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:
        return f"BillingClient({_redacted(self.base_url)!r})"

    def close(self) -> None:
        self.session.close()

    def get(self, path: str, params: dict[str, Any], stats: EntityStats) -> dict[str, Any]:
        """One list page; retries transient failures, raises BillingApiError otherwise."""
        described = f"GET {path}" + (f" {params}" if params else "")

        def count_retry(state: RetryCallState) -> None:
            stats.retries += 1
            self.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.warning("billing API %s: %s; retry %d of %d", described, exc,
                        state.attempt_number, self.max_attempts - 1)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            before_sleep=count_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send(path, params, described)
        except _Transient as exc:
            raise BillingApiError(
                f"billing API {described} still failing after {self.max_attempts} "
                f"attempts; last error: {exc.description}",
                endpoint=path, status=exc.status, attempts=self.max_attempts,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, path: str, params: dict[str, Any], described: str) -> dict[str, Any]:
        self.requests += 1
        try:
            response = self.session.get(f"{self.base_url}{path}", params=params,
                                        timeout=self.timeout)
        except requests.Timeout:
            raise _Transient(f"timed out after {self.timeout} s") from None
        except requests.ConnectionError as exc:
            raise _Transient(f"connection error ({type(exc).__name__})") from None
        status = response.status_code
        if status == 429:
            raise _Transient(f"HTTP 429: {_api_message(response)}", status=429,
                             retry_after=_retry_after_seconds(response.headers.get("Retry-After")))
        if status >= 500:
            raise _Transient(f"HTTP {status}: {_api_message(response)}", status=status)
        if status != 200:
            message = _api_message(response)
            raise BillingApiError(f"billing API {described} failed with HTTP {status}: "
                                  f"{message}", endpoint=path, status=status,
                                  api_message=message)
        try:
            body = response.json()
        except ValueError:
            raise BillingApiError(f"billing API {described} answered 200 with a body that "
                                  "is not JSON", endpoint=path, status=status) from None
        if (not isinstance(body, dict) or not isinstance(body.get("data"), list)
                or not isinstance(body.get("has_more"), bool)):
            raise BillingApiError(f"billing API {described} did not answer a list object "
                                  "(data, has_more)", endpoint=path, status=status)
        return body

    def iter_list(self, path: str, params: dict[str, Any], stats: EntityStats,
                  starting_after: str | None = None) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint, paging by `starting_after` until `has_more` ends."""
        cursor = starting_after
        while True:
            query = {**params, "limit": self.page_size}
            if cursor is not None:
                query["starting_after"] = cursor
            page = self.get(path, query, stats)
            stats.pages += 1
            data = page["data"]
            yield from data
            if not page["has_more"]:
                return
            if not data or not isinstance(data[-1], dict) or "id" not in data[-1]:
                raise BillingApiError(f"billing API GET {path} said has_more without an "
                                      "object id to continue after", endpoint=path)
            cursor = str(data[-1]["id"])


# ---------------------------------------------------------------------------------------
# Extract
# ---------------------------------------------------------------------------------------
@dataclass
class _Plan:
    entity: Entity
    flattener: _Flattener
    stats: EntityStats
    children: list[_Plan] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _epoch(iso: str) -> int:
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        raise LandingError(f"extract window bound {iso!r} has no time zone")
    return int(moment.timestamp())


def window_for(zone: LandingZone, logical_date: date) -> tuple[str | None, str]:
    """(start, end) of the billing extract for `logical_date`, ISO 8601 UTC."""
    end = datetime.combine(logical_date + timedelta(days=1), time(), tzinfo=UTC)
    previous = zone.previous_batch(SOURCE, logical_date)
    start = previous.manifest().extract_window.get("end") if previous else None
    if previous is not None and start is not None and _epoch(start) >= int(end.timestamp()):
        raise LandingError(f"billing batch {previous.logical_date} ends at {start}, "
                           f"not before this window's end {_iso(end)}")
    return start, _iso(end)


def api_settings_from_connection(conn: Any) -> tuple[str, str]:
    """(base_url, api_key) from an Airflow connection (or anything shaped like one).

    The host may be a full URL (``https://api.stripe.com``) or a bare host with the
    scheme in ``schema`` or the connection type (``http``/``https``); the key is the
    password (or, failing that, the login).
    """
    host = (getattr(conn, "host", None) or "").strip().rstrip("/")
    if not host:
        raise ValueError(f"connection {getattr(conn, 'conn_id', '?')!r} has no host")
    if "://" not in host:
        scheme = getattr(conn, "schema", None) or ""
        if scheme not in ("http", "https"):
            conn_type = getattr(conn, "conn_type", None) or ""
            scheme = conn_type if conn_type in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    port = getattr(conn, "port", None)
    if port and urlsplit(host).port is None:
        parts = urlsplit(host)
        host = urlunsplit((parts.scheme, f"{parts.netloc}:{port}", parts.path, "", ""))
    key = getattr(conn, "password", None) or getattr(conn, "login", None) or ""
    if not key:
        raise ValueError(f"connection {getattr(conn, 'conn_id', '?')!r} has no API key "
                         "(set it as the password)")
    return host, key


def extract_billing(
    zone: LandingZone,
    logical_date: date,
    base_url: str,
    api_key: str,
    *,
    force: bool = False,
    page_size: int = MAX_PAGE_SIZE,
    max_attempts: int = 8,
    backoff_seconds: float = 0.5,
    max_backoff_seconds: float = 30,
    timeout_seconds: float = 30,
    api_version: str = BILLING_API_VERSION,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    """Land the billing batch for `logical_date` and return its manifest; every request
    asks for `api_version` (``Stripe-Version``)."""
    batch = zone.batch(SOURCE, logical_date)
    if batch.exists() and not force:
        manifest = batch.manifest()
        _report(progress, f"billing {logical_date}: batch already committed "
                          f"({manifest.total_rows} rows); pass force to re-extract")
        return manifest

    start, end = window_for(zone, logical_date)
    start_epoch = _epoch(start) if start else None
    end_epoch = _epoch(end)
    client = BillingClient(base_url, api_key, page_size=page_size, api_version=api_version,
                           max_attempts=max_attempts,
                           backoff_seconds=backoff_seconds,
                           max_backoff_seconds=max_backoff_seconds,
                           timeout_seconds=timeout_seconds)
    plans = _plans(start_epoch, end_epoch)
    _report(progress, f"billing {logical_date}: extracting from {_redacted(client.base_url)} "
                      f"(Stripe-Version {api_version}), window [{start or 'beginning'}, {end})")
    with batch.new_version(lambda line: _report(progress, line)):
        try:
            for plan in plans:
                _extract_entity(client, batch, plan, progress)
        finally:
            client.close()

        state = {
            "api": _redacted(client.base_url),
            "api_version": api_version,
            "sync": "incremental" if start else "full",
            "requests": client.requests,
            "retries": client.retries,
            "entities": {p.entity.name: p.stats.as_state()
                         for plan in plans for p in (plan, *plan.children)},
        }
        manifest = batch.commit(BILLING_ENTITIES, {"start": start, "end": end}, state)
    _report(progress, f"billing {logical_date}: committed {manifest.total_rows} rows in "
                      f"{len(manifest.files)} files ({client.requests} requests, "
                      f"{client.retries} retries)")
    return manifest


def _plans(start_epoch: int | None, end_epoch: int) -> list[_Plan]:
    plans: dict[str, _Plan] = {}
    top: list[_Plan] = []
    for entity in BILLING_ENTITIES:
        stats = EntityStats(mode=entity.mode, created_lt=end_epoch,
                            created_gte=start_epoch if entity.mode == "incremental" else None)
        plan = _Plan(entity, _Flattener(entity), stats)
        plans[entity.name] = plan
        if entity.parent:
            if entity.parent not in plans or not entity.nested_path:
                raise ValueError(f"billing.{entity.name}: parent {entity.parent!r} must come "
                                 "first and nested_path must be set")
            plans[entity.parent].children.append(plan)
        elif entity.endpoint:
            top.append(plan)
        else:
            raise ValueError(f"billing.{entity.name} has neither an endpoint nor a parent")
    # Nested objects inherit the window of their parent.
    for plan in top:
        for child in plan.children:
            child.stats.created_gte = plan.stats.created_gte
            child.stats.created_lt = plan.stats.created_lt
    return top


def _extract_entity(client: BillingClient, batch: Any, plan: _Plan,
                    progress: Callable[[str], None] | None) -> None:
    entity = plan.entity
    params: dict[str, Any] = list_params(entity.name, client.api_version)
    params["created[lt]"] = plan.stats.created_lt
    if plan.stats.created_gte is not None:
        params["created[gte]"] = plan.stats.created_gte
    with ExitStack() as stack:
        writer = stack.enter_context(batch.writer(entity))
        child_writers = [(child, stack.enter_context(batch.writer(child.entity)))
                         for child in plan.children]
        assert entity.endpoint, f"{entity.name} is listed through its parent"
        for obj in client.iter_list(entity.endpoint, params, plan.stats):
            if not _first_time(plan, obj):
                continue
            _check_window(plan, obj)
            writer.write_row(plan.flattener.row(obj))
            plan.stats.objects += 1
            for child, child_writer in child_writers:
                for nested in _nested_objects(client, child, obj):
                    if _first_time(child, nested):
                        child_writer.write_row(child.flattener.row(nested))
                        child.stats.objects += 1
    for p in (plan, *plan.children):
        s = p.stats
        line = (f"billing {p.entity.name}: {s.objects} objects, {s.pages} pages, "
                f"{s.retries} retries")
        if s.duplicates_skipped:
            line += f", {s.duplicates_skipped} duplicates skipped"
        _report(progress, line)


def _first_time(plan: _Plan, obj: Any) -> bool:
    if not isinstance(obj, dict) or not obj.get("id"):
        raise BillingApiError(f"billing API returned a {plan.entity.name} entry without an id",
                              endpoint=plan.entity.endpoint or plan.entity.name)
    obj_id = str(obj["id"])
    if obj_id in plan.seen:
        plan.stats.duplicates_skipped += 1
        log.warning("billing %s %s listed twice; kept once", plan.entity.name, obj_id)
        return False
    plan.seen.add(obj_id)
    return True


def _check_window(plan: _Plan, obj: dict[str, Any]) -> None:
    """Refuse objects outside the requested window: a server ignoring `created` filters
    would otherwise land the same record in more than one batch."""
    created = obj.get("created")
    lo, hi = plan.stats.created_gte, plan.stats.created_lt
    assert hi is not None, "every listing has an upper bound"
    if (not isinstance(created, int) or isinstance(created, bool) or created >= hi
            or (lo is not None and created < lo)):
        raise BillingApiError(
            f"billing API listed {plan.entity.name[:-1]} {obj['id']} created at {created!r}, "
            f"outside the requested window [{lo}, {hi}) of {plan.entity.endpoint}",
            endpoint=plan.entity.endpoint or plan.entity.name,
        )


def _nested_objects(client: BillingClient, child: _Plan,
                    parent: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The parent's embedded list, then the rest from the nested endpoint if it has more."""
    assert child.entity.nested_path, f"{child.entity.name} has no nested path"
    list_path, _, data_key = child.entity.nested_path.rpartition(".")
    embedded = resolve_list(parent, list_path)
    parent_id = str(parent["id"])
    link = PARENT_LINK.get(child.entity.name)
    data: list[Any] = []
    has_more = True  # no embedded list at all: read the nested endpoint from the start
    if embedded is not None:
        data = embedded.get(data_key) or []
        has_more = bool(embedded.get("has_more"))
    for item in data:
        yield _with_parent(item, link, parent_id)
    if not has_more:
        return
    child.stats.parents_paged += 1
    path, params = _nested_endpoint(child.entity.name, parent_id)
    after = str(data[-1]["id"]) if data and isinstance(data[-1], dict) else None
    for item in client.iter_list(path, params, child.stats, starting_after=after):
        yield _with_parent(item, link, parent_id)


def resolve_list(obj: dict[str, Any], path: str) -> dict[str, Any] | None:
    value: Any = obj
    for step in parse_path(path) if path else ():
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and step < len(value) else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else None


def _with_parent(item: Any, link: str | None, parent_id: str) -> Any:
    if link and isinstance(item, dict) and item.get(link) is None:
        return {**item, link: parent_id}
    return item


def _report(progress: Callable[[str], None] | None, line: str) -> None:
    log.info("%s", line)
    if progress is not None:
        progress(line)
