"""Failure notification for Airflow: a readable summary posted to a chat webhook.

Use ``on_failure_callback`` as a task (or DAG) callback. The webhook comes from the
Airflow connection ``dw_alerts`` or, without it, the env var DW_ALERT_WEBHOOK_URL; with
neither, the summary is only logged.

``dw_alerts`` is an HTTP connection. The URL is the host when it is a full URL
(``https://hooks.example.com/services/T0/B0/XYZ``); otherwise it is built from the scheme
(schema or connection type ``http``/``https``, default https), host, port and the
``endpoint`` extra. A connection given as a URI (``AIRFLOW_CONN_DW_ALERTS=
http://host:8080/hook``) puts the path in schema, which is then taken as the path.
Login/password, when set, are sent as basic auth; a ``headers`` extra (object) adds
headers. Delivery has a short timeout and never raises: a broken alert channel is logged.

The POST body is JSON: ``{"text": summary, "dag_id": ..., "run_id": ..., "task_id": ...,
"try_number": ..., "logical_date": ..., "data_interval_start": ..., "data_interval_end":
..., "exception": ..., "log_url": ...}``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

ALERT_CONN_ID = "dw_alerts"
ALERT_URL_ENV = "DW_ALERT_WEBHOOK_URL"
TIMEOUT_SECONDS = 5.0
MAX_EXCEPTION_CHARS = 3000  # chat webhooks cap message sizes


@dataclass(frozen=True)
class Webhook:
    url: str
    source: str  # where the setting came from, for the log
    auth: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def webhook_from_connection(conn: Any, conn_id: str = ALERT_CONN_ID) -> Webhook:
    """A Webhook from the Airflow connection `conn_id` (or anything shaped like one)."""
    host = (getattr(conn, "host", None) or "").strip()
    if not host:
        raise ValueError(f"connection {conn_id!r} has no host")
    extra = _extra(conn)
    schema = (getattr(conn, "schema", None) or "").strip()
    if "://" in host:
        url = host
    else:
        conn_type = getattr(conn, "conn_type", None) or ""
        scheme = next((s for s in (schema, conn_type) if s in ("http", "https")), "https")
        port = getattr(conn, "port", None)
        netloc = f"{host}:{port}" if port else host
        path = str(extra.get("endpoint") or "")
        if not path and schema not in ("", "http", "https"):
            path = schema  # URI form: the path was parsed into schema
        url = urlunsplit((scheme, netloc, "/" + path.lstrip("/") if path else "", "", ""))
    login = getattr(conn, "login", None)
    auth = (login, getattr(conn, "password", None) or "") if login else None
    headers = {str(k): str(v) for k, v in dict(extra.get("headers") or {}).items()}
    return Webhook(url=url, source=f"connection {conn_id}", auth=auth, headers=headers)


def _extra(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except Exception:  # a plain object without Airflow's helper
        extra = getattr(conn, "extra", None) or {}
    return extra if isinstance(extra, dict) else {}


def configured_webhook() -> Webhook | None:
    """The `dw_alerts` connection, else DW_ALERT_WEBHOOK_URL, else None."""
    try:
        from airflow.sdk import Connection

        conn = Connection.get(ALERT_CONN_ID)
    except Exception as exc:  # not defined, or no Airflow around: fall back to the env
        log.debug("no %s connection: %s", ALERT_CONN_ID, exc)
        conn = None
    if conn is not None:
        return webhook_from_connection(conn)
    url = os.environ.get(ALERT_URL_ENV, "").strip()
    return Webhook(url=url, source=f"env {ALERT_URL_ENV}") if url else None


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _exception_text(context: Mapping[str, Any]) -> str | None:
    exc = context.get("exception")
    if exc is None:
        reason = context.get("reason")  # DAG-level callbacks carry a reason instead
        return str(reason) if reason else None
    text = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
    if len(text) > MAX_EXCEPTION_CHARS:
        text = text[:MAX_EXCEPTION_CHARS] + " ... (truncated, see the log)"
    return text


def failure_fields(context: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a failure from an Airflow 3 callback context (task or DAG level)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    try:
        log_url = _get(ti, "log_url")
    except Exception:  # the URL is built from config; never let it cost the alert
        log_url = None
    start = context.get("data_interval_start") or _get(dag_run, "data_interval_start")
    end = context.get("data_interval_end") or _get(dag_run, "data_interval_end")
    return {
        "dag_id": _get(ti, "dag_id") or _get(dag, "dag_id") or _get(dag_run, "dag_id"),
        "run_id": context.get("run_id") or _get(ti, "run_id") or _get(dag_run, "run_id"),
        "task_id": _get(ti, "task_id"),
        "try_number": _get(ti, "try_number"),
        "max_tries": _get(ti, "max_tries"),
        "logical_date": _text(context.get("logical_date") or _get(dag_run, "logical_date")),
        "data_interval_start": _text(start),
        "data_interval_end": _text(end),
        "exception": _exception_text(context),
        "log_url": log_url,
    }


def failure_summary(context: Mapping[str, Any]) -> str:
    """A few readable lines: what failed, for which run and date, why, where the log is."""
    f = failure_fields(context)
    where = f"{f['dag_id'] or '?'}" + (f".{f['task_id']}" if f["task_id"] else "")
    lines = [f"Airflow failure: {where}", f"run: {f['run_id'] or '?'}"]
    if f["logical_date"]:
        lines.append(f"logical date: {f['logical_date']}")
    if f["data_interval_start"] or f["data_interval_end"]:
        lines.append(f"data interval: {f['data_interval_start']} to {f['data_interval_end']}")
    if f["try_number"] is not None:
        tries = f" of {f['max_tries'] + 1}" if isinstance(f["max_tries"], int) else ""
        lines.append(f"try: {f['try_number']}{tries}")
    lines.append(f"error: {f['exception'] or 'unknown (see the log)'}")
    if f["log_url"]:
        lines.append(f"log: {f['log_url']}")
    return "\n".join(lines)


def send(webhook: Webhook, summary: str, fields: Mapping[str, Any]) -> None:
    """POST the alert; raises on a network error or a non-2xx answer."""
    response = requests.post(webhook.url, json={"text": summary, **fields},
                             auth=webhook.auth, headers=webhook.headers or None,
                             timeout=TIMEOUT_SECONDS)
    response.raise_for_status()


def delivery_error(exc: Exception) -> str:
    # requests' messages repeat the URL, whose path is often the webhook's secret token.
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


def on_failure_callback(context: Mapping[str, Any]) -> None:
    """Airflow failure callback: log the summary and post it to the webhook. Never raises:
    a broken alert channel must not hide (or replace) the failure being reported."""
    try:
        summary = failure_summary(context)
        fields = failure_fields(context)
    except Exception:
        log.exception("could not summarise the failure for the alert")
        return
    log.error("%s", summary)
    try:
        webhook = configured_webhook()
    except Exception:
        log.exception("the %s connection is not a usable webhook", ALERT_CONN_ID)
        return
    if webhook is None:
        log.info("no alert webhook configured (connection %s or env %s): logged only",
                 ALERT_CONN_ID, ALERT_URL_ENV)
        return
    try:
        send(webhook, summary, fields)
    except Exception as exc:
        log.warning("could not deliver the failure alert via %s to %s: %s", webhook.source,
                    urlsplit(webhook.url).netloc, delivery_error(exc))
    else:
        log.info("failure alert sent via %s", webhook.source)
