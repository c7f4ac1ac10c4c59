"""Writers that put the simulated business into the three sources' real interfaces.

- CRM: schema ``crm`` in a PostgreSQL database, one table per contract entity, filled with
  ``COPY`` (primary keys and ``updated_at`` indexes are built after the load).
- Billing: Stripe-shaped JSON objects in the SQLite file behind the local billing API.
- Survey: platform-style CSV exports ``<entity>_<YYYY-MM-DD>.csv`` in an inbox folder.
- Planted truth: one CSV row per defection, for measuring attribution.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from defection_warehouse.sources.contracts import CRM_ENTITIES, SURVEY_ENTITIES, Entity

from . import catalog as cat
from .simulate import BillingCustomer, Sub
from .timeline import Calendar

CRM_SCHEMA = "crm"
TRUTH_COLUMNS = (
    "crm_account_id", "billing_customer_id", "subscription_ids", "requested_cancel_date",
    "defection_date", "involuntary", "planted_causes", "primary_cause",
)


# ---------------------------------------------------------------------------------------
# CRM
# ---------------------------------------------------------------------------------------
def crm_table_ddl(e: Entity) -> sql.Composed:
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name), sql.SQL(c.type),
            sql.SQL("" if c.nullable else " not null"))
        for c in e.columns
    )
    return sql.SQL("create table {}.{} ({})").format(
        sql.Identifier(CRM_SCHEMA), sql.Identifier(e.name), cols)


class CrmWriter:
    """Recreates schema ``crm`` and streams rows into it, all in one transaction."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)
        self.entities = {e.name: e for e in CRM_ENTITIES}
        self._copy_sql = {
            e.name: sql.SQL("copy {}.{} ({}) from stdin").format(
                sql.Identifier(CRM_SCHEMA), sql.Identifier(e.name),
                sql.SQL(", ").join(sql.Identifier(n) for n in e.column_names))
            for e in CRM_ENTITIES
        }

    def __enter__(self) -> CrmWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.conn.rollback()
        self.conn.close()

    def create(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("drop schema if exists {} cascade").format(
                sql.Identifier(CRM_SCHEMA)))
            cur.execute(sql.SQL("create schema {}").format(sql.Identifier(CRM_SCHEMA)))
            for e in CRM_ENTITIES:
                cur.execute(crm_table_ddl(e))

    def write(self, table: str, rows: list[tuple]) -> None:
        if not rows:
            return
        with self.conn.cursor() as cur, cur.copy(self._copy_sql[table]) as cp:
            write = cp.write_row
            for row in rows:
                write(row)

    def finish(self) -> None:
        """Keys and indexes after the bulk load, then commit."""
        with self.conn.cursor() as cur:
            for e in CRM_ENTITIES:
                table = sql.Identifier(CRM_SCHEMA, e.name)
                cur.execute(sql.SQL("alter table {} add constraint {} primary key ({})").format(
                    table, sql.Identifier(f"{e.name}_pkey"),
                    sql.SQL(", ").join(sql.Identifier(k) for k in e.primary_key)))
                cur.execute(sql.SQL("create index {} on {} ({})").format(
                    sql.Identifier(f"{e.name}_updated_at_idx"), table,
                    sql.Identifier(e.updated_column or "updated_at")))
        self.conn.commit()
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            for e in CRM_ENTITIES:
                cur.execute(sql.SQL("analyze {}").format(sql.Identifier(CRM_SCHEMA, e.name)))


# ---------------------------------------------------------------------------------------
# Billing (Stripe-shaped JSON)
# ---------------------------------------------------------------------------------------
_FAILURE_MESSAGES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "processing_error": "An error occurred while processing your card. Try again.",
}
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
_PRICE_OBJECTS: dict[str, dict[str, Any]] = {
    p.price_id: {
        "id": p.price_id, "object": "price", "active": True, "currency": cat.CURRENCY,
        "product": p.product_id, "nickname": p.plan_name, "type": "recurring",
        "unit_amount": p.unit_amount,
        "recurring": {"interval": p.interval, "interval_count": 1, "usage_type": "licensed"},
    }
    for p in cat.PRICE_BY_ID.values()
}


def _price(price_id: str) -> dict[str, Any]:
    # a fresh copy per object keeps every JSON document self-contained
    p = _PRICE_OBJECTS[price_id]
    return {**p, "recurring": dict(p["recurring"])}


def _discount(bc: BillingCustomer, sub: Sub) -> dict[str, Any] | None:
    if sub.coupon is None:
        return None
    coupon_id, name, pct = sub.coupon
    return {
        "id": sub.discount_id, "object": "discount", "customer": bc.id,
        "subscription": sub.id, "start": sub.created, "end": None,
        "coupon": {"id": coupon_id, "object": "coupon", "name": name, "percent_off": pct,
                   "amount_off": None, "currency": None, "duration": "forever",
                   "valid": True},
    }


def billing_objects(bc: BillingCustomer, counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    """The customer's Stripe objects; counts objects and nested rows per contract entity."""
    prefix = bc.id[4:12].upper()
    yield {
        "id": bc.id, "object": "customer", "created": bc.created, "email": bc.email,
        "name": bc.name, "description": None, "currency": bc.currency,
        "delinquent": bc.delinquent, "balance": 0, "invoice_prefix": prefix,
        # a customer created without its CRM account id has no link to the CRM
        "metadata": {"crm_account_id": str(bc.account_id)} if bc.crm_linked else {},
        "livemode": False,
    }
    counts["billing.customers"] += 1
    number = 0
    charges_out: list[dict[str, Any]] = []
    for sub in bc.subs:
        price_id = sub.price.price_id
        # the price object is the catalog's (usd); a customer billed in another currency
        # pays the local list price, as with Stripe's currency_options
        unit_amount = cat.local_unit_amount(sub.price.unit_amount, bc.currency)
        disc = _discount(bc, sub)
        k = sub.period
        item = {
            "id": sub.item_id, "object": "subscription_item", "subscription": sub.id,
            "created": sub.created, "quantity": sub.qty[k], "price": _price(price_id),
            "metadata": {},
        }
        yield {
            "id": sub.id, "object": "subscription", "customer": bc.id, "status": sub.status,
            "created": sub.created, "start_date": sub.created,
            "billing_cycle_anchor": sub.created,
            "current_period_start": sub.bounds[k], "current_period_end": sub.bounds[k + 1],
            "cancel_at_period_end": sub.cancel_at_period_end, "cancel_at": sub.cancel_at,
            "canceled_at": sub.canceled_at, "ended_at": sub.ended_at,
            "cancellation_details": {"reason": sub.reason, "feedback": sub.feedback,
                                     "comment": sub.comment},
            "collection_method": "charge_automatically", "currency": bc.currency,
            "discount": disc,
            "items": {"object": "list", "data": [item], "has_more": False, "total_count": 1,
                      "url": f"/v1/subscription_items?subscription={sub.id}"},
            "latest_invoice": sub.invoices[-1].id if sub.invoices else None,
            "metadata": {}, "livemode": False,
        }
        counts["billing.subscriptions"] += 1
        counts["billing.subscription_items"] += 1
        disc_amounts_id = sub.discount_id
        for inv in sub.invoices:
            total = inv.amount - inv.discount
            paid = inv.status == "paid"
            discounts = [{"amount": inv.discount, "discount": disc_amounts_id}] \
                if inv.discount else []
            line = {
                "id": inv.line_id, "object": "line_item", "invoice": inv.id,
                "subscription": sub.id, "subscription_item": sub.item_id,
                "type": "subscription", "price": _price(price_id), "quantity": inv.qty,
                "amount": inv.amount, "currency": bc.currency,
                "description": f"{inv.qty} × {sub.price.plan_name} "
                               f"(at {_SYMBOLS[bc.currency]}{unit_amount / 100:,.2f} / "
                               f"{sub.price.interval})",
                "discount_amounts": discounts,
                "period": {"start": inv.period_start, "end": inv.period_end},
                "proration": False,
            }
            finalized = None if inv.status == "draft" else inv.created + \
                (0 if inv.k == 0 else 3_600)
            if finalized is not None:
                number += 1
            yield {
                "id": inv.id, "object": "invoice", "customer": bc.id,
                "customer_email": bc.email, "subscription": sub.id, "status": inv.status,
                "billing_reason": inv.reason, "collection_method": "charge_automatically",
                "created": inv.created, "period_start": inv.period_start,
                "period_end": inv.period_end, "currency": bc.currency,
                "subtotal": inv.amount, "total": total,
                "total_discount_amounts": [dict(d) for d in discounts],
                "amount_due": total, "amount_paid": total if paid else 0,
                "amount_remaining": 0 if paid else total,
                "attempt_count": len(inv.charges), "attempted": bool(inv.charges),
                "paid": paid, "charge": inv.charges[-1][0] if inv.charges else None,
                "number": f"{prefix}-{number:04d}" if finalized is not None else None,
                "status_transitions": {
                    "finalized_at": finalized, "paid_at": inv.paid_at,
                    "marked_uncollectible_at": inv.uncollectible_at, "voided_at": None},
                "lines": {"object": "list", "data": [line], "has_more": False,
                          "total_count": 1, "url": f"/v1/invoices/{inv.id}/lines"},
                "livemode": False,
            }
            counts["billing.invoices"] += 1
            counts["billing.invoice_lines"] += 1
            for ch_id, created, amount, ok, code, refunded, disputed in inv.charges:
                charges_out.append({
                    "id": ch_id, "object": "charge", "customer": bc.id, "invoice": inv.id,
                    "amount": amount, "amount_captured": amount if ok else 0,
                    "amount_refunded": refunded, "currency": bc.currency,
                    "status": "succeeded" if ok else "failed", "paid": ok, "captured": ok,
                    "failure_code": code,
                    "failure_message": _FAILURE_MESSAGES.get(code) if code else None,
                    "refunded": bool(ok and refunded and refunded >= amount),
                    "disputed": disputed, "created": created,
                    "payment_method_details": {"type": "card"}, "livemode": False,
                })
    yield from charges_out
    counts["billing.charges"] += len(charges_out)
    for re_id, ch_id, amount, reason, created in bc.refunds:
        yield {"id": re_id, "object": "refund", "charge": ch_id, "amount": amount,
               "currency": bc.currency, "reason": reason, "status": "succeeded",
               "created": created}
    counts["billing.refunds"] += len(bc.refunds)
    for dp_id, ch_id, amount, reason, status, created in bc.disputes:
        yield {"id": dp_id, "object": "dispute", "charge": ch_id, "amount": amount,
               "currency": bc.currency, "reason": reason, "status": status,
               "created": created, "is_charge_refundable": False, "livemode": False}
    counts["billing.disputes"] += len(bc.disputes)


# ---------------------------------------------------------------------------------------
# Survey exports and planted truth
# ---------------------------------------------------------------------------------------
def _entity(name: str) -> Entity:
    return next(e for e in SURVEY_ENTITIES if e.name == name)


def write_survey_inbox(inbox: Path, cal: Calendar,
                       surveys: list[tuple[str, str, str, int]],
                       responses: list[tuple[int, tuple]],
                       exit_answers: list[tuple[int, tuple]]) -> dict[str, int]:
    """Write ``<entity>_<day>.csv`` files, one per export day that has rows."""
    inbox.mkdir(parents=True, exist_ok=True)
    counts = {}
    survey_rows = [(created, (sid, kind, title, cal.iso_ts(created)))
                   for sid, kind, title, created in surveys]
    for name, rows in (("surveys", survey_rows), ("responses", responses),
                       ("exit_answers", exit_answers)):
        header = _entity(name).column_names
        by_day: dict[str, list[tuple[int, tuple]]] = defaultdict(list)
        for ts, row in rows:
            by_day[cal.day_str(ts)].append((ts, row))
        for day in sorted(by_day):
            day_rows = sorted(by_day[day], key=lambda x: (x[0], x[1][0]))
            with open(inbox / f"{name}_{day}.csv", "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(header)
                w.writerows(row for _, row in day_rows)
        counts[f"survey.{name}"] = len(rows)
    return counts


def write_truth(path: Path, truth: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TRUTH_COLUMNS)
        w.writerows(sorted(truth, key=lambda row: row[0]))
