"""Owner digests: for each owning function of the cause taxonomy, what its causes cost in
the month, the defections behind that with their evidence, and its accounts at risk now.

Built with the report from the published schema only, and kept beside it
(<data_dir>/reports/<as_of_date>/digests/<owner>.json). `send_digests` posts each digest
through `DigestNotifier` (an Airflow notifier) to the owner's webhook, the Airflow HTTP
connection `dw_digest_<owner>` (same fields as `dw_alerts`, see notify.py); an owner
without one is logged and skipped. Sending never raises: it runs after the publish, and a
broken channel must not fail, or undo, the night.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier
from psycopg import sql
from psycopg.rows import dict_row

from defection_warehouse.config import PROJECT_ROOT
from defection_warehouse.db import connect
from defection_warehouse.notify import (
    Webhook,
    delivery_error,
    send,
    webhook_from_connection,
)
from defection_warehouse.report.data import (
    TRAILING_MONTHS,
    CauseTrend,
    ReportData,
    Row,
    trend_direction,
)

log = logging.getLogger(__name__)

CAUSE_TAXONOMY = PROJECT_ROOT / "dbt_project" / "seeds" / "cause_taxonomy.csv"
CONN_ID_PREFIX = "dw_digest_"
DIGEST_DEFECTIONS = 10  # defections listed in a digest's text (the JSON holds all)
DIGEST_ACCOUNTS = 10  # accounts at risk listed in a digest's text


def owning_functions(extra: Iterable[str] = ()) -> list[str]:
    """The owning functions of the cause taxonomy seed, and any the marts name besides."""
    with CAUSE_TAXONOMY.open(newline="") as f:
        owners = {row["owning_function"] for row in csv.DictReader(f)}
    return sorted(owners | set(extra))


def conn_id(owner: str) -> str:
    return f"{CONN_ID_PREFIX}{owner}"


@dataclass(frozen=True)
class Digest:
    owner: str
    as_of_date: date
    month: date
    lost_mrr: Decimal  # cents: sum of mart_cause_attribution.lost_mrr_attributed
    defections: Decimal  # sum of mart_cause_attribution.defections_attributed
    causes: list[dict[str, Any]]  # the owner's causes: lost MRR, trailing mean, direction
    defection_rows: list[dict[str, Any]] = field(default_factory=list)
    at_risk: list[dict[str, Any]] = field(default_factory=list)
    at_risk_mrr: int = 0  # cents: sum of mart_accounts_at_risk.mrr_at_risk

    @property
    def direction(self) -> str:
        """The owner's lost MRR against the mean of its months before (its causes')."""
        means = [c["trailing_mean"] for c in self.causes if c["trailing_mean"] is not None]
        return trend_direction(self.lost_mrr, sum(means, Decimal(0)) if means else None)

    def text(self) -> str:
        """A short plain-text digest, for a chat message."""
        lines = [f"Defection digest for {self.owner}, {self.month:%Y-%m} "
                 f"(as of {self.as_of_date})",
                 f"Lost MRR attributed to your causes: {float(self.lost_mrr) / 100:,.2f} "
                 f"over {float(self.defections):.1f} defections ({self.direction} against "
                 f"the mean of the {TRAILING_MONTHS} months before)."]
        for c in self.causes:
            mean = ("n/a" if c["trailing_mean"] is None
                    else f"{float(c['trailing_mean']) / 100:,.0f}")
            lines.append(f"- {c['cause_id']}: {float(c['lost_mrr']) / 100:,.2f} "
                         f"({c['direction']}; mean before {mean})")
        if self.defection_rows:
            lines.append(f"Defections behind it ({len(self.defection_rows)}, largest "
                         "first):")
            for d in self.defection_rows[:DIGEST_DEFECTIONS]:
                evidence = "; ".join(d["evidence"] or []) or "no evidence"
                lines.append(f"- {d['customer_id']} on {d['defection_date']}: "
                             f"{d['cause_id']} weight {float(d['weight']):.2f} of "
                             f"{d['lost_mrr'] / 100:,.2f} lost MRR. Evidence: {evidence}")
        lines.append(f"Accounts at risk now: {len(self.at_risk)}, "
                     f"{self.at_risk_mrr / 100:,.2f} MRR at risk.")
        for a in self.at_risk[:DIGEST_ACCOUNTS]:
            lines.append(f"- {a['account_name'] or a['customer_id']} "
                         f"({a['owner'] or 'no owner'}): {a['mrr_at_risk'] / 100:,.2f}, "
                         f"{a['top_cause']}")
        fixes = {a["top_cause"]: a["recommended_fix"] for a in self.at_risk
                 if a["recommended_fix"]}
        for cause, fix in sorted(fixes.items()):
            lines.append(f"What to do about {cause}: {fix}")
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body: the text and the figures behind it."""
        return {"text": self.text(), **json.loads(json.dumps(asdict(self), default=str))}


def _cause_dict(t: CauseTrend) -> dict[str, Any]:
    return {"cause_id": t.cause_id, "cause_label": t.cause_label, "lost_mrr": t.lost_mrr,
            "defections": t.defections, "trailing_mean": t.trailing_mean,
            "direction": t.direction}


def build_digests(warehouse_url: str, data: ReportData) -> list[Digest]:
    """One digest per owning function, for the report's focus month."""
    month = data.focus_month
    with connect(warehouse_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        schema = sql.Identifier(data.schema)
        totals = {r["owning_function"]: r for r in cur.execute(sql.SQL(
            "select owning_function, sum(lost_mrr_attributed) as lost_mrr, "
            "sum(defections_attributed) as defections from {}.mart_cause_attribution "
            "where defection_month = %s group by owning_function").format(schema),
            (month,)).fetchall()}
        behind: list[Row] = cur.execute(sql.SQL(
            "select c.owning_function, d.defection_id, d.customer_id, d.defection_date, "
            "d.defection_type, d.lost_mrr, d.segment, c.cause_id, c.weight, c.evidence "
            "from {}.fct_defection_causes as c join {}.fct_defections as d "
            "using (defection_id) where d.defection_month = %s "
            "order by c.weight * d.lost_mrr desc, d.defection_id, c.cause_id").format(
                schema, schema), (month,)).fetchall()
    owners = owning_functions({t.owning_function for t in data.cause_trends}
                              | {r["owning_function"] for r in data.at_risk})
    digests = []
    for owner in owners:
        total = totals.get(owner, {})
        at_risk = [r for r in data.at_risk if r["owning_function"] == owner]
        digests.append(Digest(
            owner=owner, as_of_date=data.as_of_date, month=month,
            lost_mrr=total.get("lost_mrr") or Decimal(0),
            defections=total.get("defections") or Decimal(0),
            causes=[_cause_dict(t) for t in data.cause_trends if t.owning_function == owner],
            defection_rows=[{k: v for k, v in r.items() if k != "owning_function"}
                            for r in behind if r["owning_function"] == owner],
            at_risk=at_risk, at_risk_mrr=sum(r["mrr_at_risk"] for r in at_risk)))
    return digests


def write_digests(digests: Sequence[Digest], report_dir: Path) -> Path:
    """Each digest as <report_dir>/digests/<owner>.json (payload) and .txt; the folder."""
    folder = report_dir / "digests"
    folder.mkdir(parents=True, exist_ok=True)
    for old in (*folder.glob("*.json"), *folder.glob("*.txt")):  # a rebuild replaces all
        old.unlink()
    for d in digests:
        (folder / f"{d.owner}.json").write_text(json.dumps(d.payload(), indent=2) + "\n")
        (folder / f"{d.owner}.txt").write_text(d.text() + "\n")
    return folder


def read_digests(folder: Path) -> list[dict[str, Any]]:
    """The payloads write_digests wrote, by owner."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def owner_webhook(owner: str) -> Webhook | None:
    """The webhook of the connection dw_digest_<owner>, or None when it is not defined."""
    try:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id(owner))
    except Exception as exc:  # not defined, or no Airflow around
        log.debug("no %s connection: %s", conn_id(owner), exc)
        return None
    return None if conn is None else webhook_from_connection(conn, conn_id=conn_id(owner))


class DigestNotifier(BaseNotifier):
    """Posts one owner's digest (a payload of `Digest.payload`) to its webhook.

    Usable as an Airflow callback (`on_success_callback=DigestNotifier(payload)`) or
    called directly with a context. `notify` raises when the post fails (BaseNotifier logs
    it); `send_digests` catches it.
    """

    template_fields = ()

    def __init__(self, payload: Mapping[str, Any], webhook: Webhook | None = None) -> None:
        super().__init__()
        self.payload = dict(payload)
        self.owner = str(payload["owner"])
        self.webhook = webhook

    def notify(self, context: Any) -> None:
        webhook = self.webhook or owner_webhook(self.owner)
        if webhook is None:
            log.info("digest for %s: no connection %s, not sent", self.owner,
                     conn_id(self.owner))
            return
        send(webhook, self.payload["text"], {k: v for k, v in self.payload.items()
                                             if k != "text"})
        log.info("digest for %s sent via %s", self.owner, webhook.source)


@dataclass(frozen=True)
class SendResult:
    sent: tuple[str, ...]
    skipped: tuple[str, ...]  # no connection
    failed: tuple[str, ...]


def send_digests(folder: Path, context: Mapping[str, Any] | None = None) -> SendResult:
    """Send every digest in `folder` (written by write_digests) to its owner's webhook.

    Never raises for an owner: a missing connection is logged and skipped, a failed post
    logged (without the webhook's URL) and reported in the result, so the caller (the
    task after publish) cannot undo or fail the publish through it.
    """
    sent, skipped, failed = [], [], []
    try:
        payloads = read_digests(folder)
    except Exception:
        log.exception("could not read the digests in %s", folder)
        return SendResult((), (), ())
    for payload in payloads:
        owner = str(payload.get("owner"))
        try:
            webhook = owner_webhook(owner)
            if webhook is None:
                log.info("digest for %s: no connection %s, logged only", owner,
                         conn_id(owner))
                skipped.append(owner)
                continue
            DigestNotifier(payload, webhook).notify(dict(context or {}))
            sent.append(owner)
        except Exception as exc:
            log.warning("could not send the digest for %s: %s", owner,
                        delivery_error(exc))
            failed.append(owner)
    log.info("digests: %d sent, %d without a connection, %d failed", len(sent),
             len(skipped), len(failed))
    return SendResult(tuple(sent), tuple(skipped), tuple(failed))
