"""One more day of business on top of a generated sample (benchmarks and fault tests).

Changes about `share` of the rows of each source the way a day of operations would: CRM
records edited (updated_at on the new day), new touchpoints and tickets; new invoices and
charges for a share of live subscriptions and a few cancellations in billing; a new export
file of survey responses. Deterministic from the seed.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import psycopg

from defection_warehouse.db import one_row
from defection_warehouse.sample.billing_store import BillingStore
from defection_warehouse.sample.catalog import local_unit_amount


def _at(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(1), tzinfo=UTC) + timedelta(
        seconds=rng.randrange(20 * 3600))


def mutate_crm(crm_url: str, day: date, share: float, rng: random.Random) -> int:
    changed = 0
    stamp = datetime.combine(day, time(12), tzinfo=UTC)
    with psycopg.connect(crm_url) as conn:
        for table, key in (("accounts", "account_id"), ("contacts", "contact_id"),
                           ("deals", "deal_id"), ("tickets", "ticket_id")):
            cur = conn.execute(
                f"update crm.{table} set updated_at = %s where {key} in "  # noqa: S608
                f"(select {key} from crm.{table} where hashtext({key}::text || %s) %% %s = 0)",
                (stamp, str(rng.random()), round(1 / share)))
            changed += cur.rowcount
        for table, key, when in (("activities", "activity_id", "occurred_at"),
                                 ("tickets", "ticket_id", "opened_at")):
            # The sample's CRM ids are text holding integers: new rows continue the series.
            top = one_row(conn.execute(
                f"select max({key}::bigint) from crm.{table}"))[0]  # noqa: S608
            cols = [r[0] for r in conn.execute(
                "select column_name from information_schema.columns where table_schema = "
                "'crm' and table_name = %s order by ordinal_position", (table,))]
            select = ", ".join(
                f"({key}::bigint + {top})::text" if c == key else
                "%(ts)s" if c in (when, "created_at", "updated_at") else c for c in cols)
            cur = conn.execute(
                f"insert into crm.{table} ({', '.join(cols)}) select {select} "  # noqa: S608
                f"from crm.{table} where {key}::bigint <= {top} and {key}::bigint %% %(n)s = 0",
                {"ts": stamp, "n": round(1 / share)})
            changed += cur.rowcount
    return changed


def mutate_billing(store_path: Path, day: date, share: float, rng: random.Random) -> int:
    start = int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())
    new: list[dict] = []
    with BillingStore(store_path) as store:
        live = [s for s in store.iter_all("subscription") if s["status"] == "active"]
        for sub in rng.sample(live, max(1, int(len(live) * share))):
            created = start + rng.randrange(20 * 3600)
            item = sub["items"]["data"][0]
            currency = sub["currency"]
            amount = local_unit_amount(item["price"]["unit_amount"], currency) \
                * item["quantity"]
            inv_id = f"in_next_{sub['id']}_{day:%Y%m%d}"
            period_end = created + 30 * 86400
            new.append({
                "id": inv_id, "object": "invoice", "customer": sub["customer"],
                "subscription": sub["id"], "status": "paid",
                "billing_reason": "subscription_cycle", "created": created,
                "period_start": created, "period_end": period_end, "subtotal": amount,
                "total": amount, "amount_due": amount, "amount_paid": amount,
                "attempt_count": 1, "currency": currency,
                "lines": {"object": "list", "has_more": False, "data": [{
                    "id": f"il_next_{sub['id']}_{day:%Y%m%d}", "object": "line_item",
                    "invoice": inv_id, "subscription": sub["id"], "amount": amount,
                    "currency": currency, "quantity": item["quantity"], "proration": False,
                    "price": item["price"], "discount_amounts": [],
                    "period": {"start": created, "end": period_end}}]},
            })
            new.append({
                "id": f"ch_next_{sub['id']}_{day:%Y%m%d}", "object": "charge",
                "customer": sub["customer"], "invoice": inv_id, "amount": amount,
                "currency": currency, "status": "succeeded", "failure_code": None,
                "paid": True, "refunded": False, "amount_refunded": 0, "disputed": False,
                "created": created,
            })
        for sub in rng.sample(live, max(1, int(len(live) * share / 5))):
            sub["cancel_at_period_end"] = True
            sub["canceled_at"] = start + rng.randrange(20 * 3600)
            sub["cancel_at"] = sub["current_period_end"]
            sub["cancellation_details"] = {"reason": "cancellation_requested",
                                           "feedback": "too_expensive", "comment": None}
            new.append(sub)
        store.write(new)
    return len(new)


def mutate_survey(inbox: Path, day: date, share: float, rng: random.Random) -> int:
    rows: list[list[str]] = []
    header: list[str] = []
    for path in sorted(inbox.glob("responses_*.csv")):
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows.extend(reader)
    picked = rng.sample(rows, max(1, int(len(rows) * share)))
    out = inbox / f"responses_{day.isoformat()}.csv"
    with out.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for i, row in enumerate(picked):
            row = list(row)
            row[0] = f"r_next_{day:%Y%m%d}_{i}"
            row[3] = _at(day, rng).isoformat()
            writer.writerow(row)
    return len(picked)


def add_day(crm_url: str, sample_dir: Path, day: date, share: float = 0.01,
            seed: int = 1) -> dict[str, int]:
    rng = random.Random(seed)
    return {
        "crm_rows": mutate_crm(crm_url, day, share, rng),
        "billing_objects": mutate_billing(sample_dir / "billing.sqlite", day, share, rng),
        "survey_rows": mutate_survey(sample_dir / "survey_inbox", day, share, rng),
    }
