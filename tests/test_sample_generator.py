"""Sample generator: deterministic, shaped like the contracts, and causes leave traces.

One small sample (1,000 customers x 12 months) is generated twice into two scratch
databases and folders; the tests then read the first one back through the sources'
real interfaces (CRM tables, billing store, survey CSV files) and the planted truth.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from defection_warehouse.db import one_row
from defection_warehouse.sample import SampleParams, catalog, generate
from defection_warehouse.sample.__main__ import main as sample_cli
from defection_warehouse.sample.billing_server import Shape, present
from defection_warehouse.sample.billing_store import OBJECT_TYPES, BillingStore
from defection_warehouse.sources.contracts import (
    BASIL_API_VERSION,
    BILLING_API_VERSION,
    BILLING_ENTITIES,
    BILLING_SHAPES,
    CLOVER_API_VERSION,
    CRM_ENTITIES,
    EXIT_REASON_OPTIONS,
    SURVEY_ENTITIES,
)

END = date(2026, 10, 31)
END_TS = int(datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC).timestamp())
PARAMS = SampleParams(customers=1000, months=12, seed=42, end_date=END)
PG_TYPES = {"bigint": "bigint", "integer": "integer", "text": "text", "boolean": "boolean",
            "timestamptz": "timestamp with time zone", "date": "date"}
STRIPE_FEEDBACK = {"too_expensive", "missing_features", "switched_service", "unused",
                   "customer_service", "too_complex", "low_quality", "other"}
STRIPE_REASON = {"cancellation_requested", "payment_failed", "payment_disputed"}


@dataclass
class Run:
    out: Path
    crm: str
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def runs(module_database, tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    out = []
    for _ in range(2):
        url = module_database("dwtest_sample")
        folder = tmp_path_factory.mktemp("sample")
        out.append(Run(folder, url, generate(PARAMS, folder, url, progress=None)))
    return out


@dataclass
class Sample:
    crm: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    billing: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    survey: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    survey_files: list[Path] = field(default_factory=list)
    truth: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def sample(runs: list[Run]) -> Sample:
    return _read_sample(runs[0])


def _read_sample(run: Run) -> Sample:
    s = Sample()
    with psycopg.connect(run.crm, row_factory=dict_row) as conn:
        for e in CRM_ENTITIES:
            s.crm[e.name] = conn.execute(sql.SQL("select * from {}").format(
                sql.Identifier("crm", e.name))).fetchall()
    with BillingStore(run.out / "billing.sqlite") as store:
        for t in OBJECT_TYPES:
            s.billing[t] = list(store.iter_all(t))
    s.survey_files = sorted((run.out / "survey_inbox").iterdir())
    for f in s.survey_files:
        with open(f, newline="", encoding="utf-8") as fh:
            s.survey[f.name.rsplit("_", 1)[0]].extend(csv.DictReader(fh))
    with open(run.out / "planted_truth.csv", newline="", encoding="utf-8") as fh:
        s.truth = list(csv.DictReader(fh))
    return s


def _file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _crm_checksums(url: str) -> dict[str, tuple[int, str]]:
    out = {}
    with psycopg.connect(url) as conn:
        for e in CRM_ENTITIES:
            q = sql.SQL("select count(*), md5(string_agg(t::text, E'\\n' order by {})) "
                        "from {} t").format(
                sql.SQL(", ").join(sql.Identifier(k) for k in e.primary_key),
                sql.Identifier("crm", e.name))
            out[e.name] = conn.execute(q).fetchone()
    return out


# ---------------------------------------------------------------------------------------
def test_same_params_give_identical_files_and_rows(runs: list[Run]) -> None:
    a, b = runs
    hashes = _file_hashes(a.out)
    assert {"billing.sqlite", "planted_truth.csv", "sample.json"} <= set(hashes)
    assert sum(1 for k in hashes if k.startswith("survey_inbox/")) > 100
    assert hashes == _file_hashes(b.out)
    crm_a = _crm_checksums(a.crm)
    assert all(n > 0 for n, _ in crm_a.values())
    assert crm_a == _crm_checksums(b.crm)
    assert a.summary["row_counts"] == b.summary["row_counts"]
    meta = json.loads((a.out / "sample.json").read_text())
    assert meta["params"] == {"customers": 1000, "months": 12, "seed": 42,
                              "end_date": "2026-10-31", "difficulty": "standard"}
    assert re.fullmatch(r"[0-9a-f]{64}", meta["fingerprint"])
    assert meta["row_counts"] == a.summary["row_counts"]
    assert meta["defections"] == a.summary["defections"] > 0


def test_every_contract_entity_has_rows_and_counts_match(runs: list[Run], sample: Sample) -> None:
    counts = runs[0].summary["row_counts"]
    for e in CRM_ENTITIES:
        assert len(sample.crm[e.name]) == counts[f"crm.{e.name}"] > 0, e.name
    nested = {
        "customers": len(sample.billing["customer"]),
        "subscriptions": len(sample.billing["subscription"]),
        "subscription_items": sum(len(s["items"]["data"]) for s in sample.billing["subscription"]),
        "invoices": len(sample.billing["invoice"]),
        "invoice_lines": sum(len(i["lines"]["data"]) for i in sample.billing["invoice"]),
        "prices": len(sample.billing["price"]),
        "charges": len(sample.billing["charge"]),
        "refunds": len(sample.billing["refund"]),
        "disputes": len(sample.billing["dispute"]),
    }
    for e in BILLING_ENTITIES:
        assert nested[e.name] == counts[f"billing.{e.name}"] > 0, e.name
    for e in SURVEY_ENTITIES:
        assert len(sample.survey[e.name]) == counts[f"survey.{e.name}"] > 0, e.name
    assert len(sample.crm["accounts"]) == len(sample.billing["customer"]) == 1000


def test_crm_tables_match_the_contract(runs: list[Run]) -> None:
    with psycopg.connect(runs[0].crm) as conn:
        for e in CRM_ENTITIES:
            cols = conn.execute(
                "select column_name, data_type, is_nullable from information_schema.columns "
                "where table_schema = 'crm' and table_name = %s order by ordinal_position",
                (e.name,)).fetchall()
            assert cols == [(c.name, PG_TYPES[c.type], "YES" if c.nullable else "NO")
                            for c in e.columns], e.name
            pk = one_row(conn.execute(
                "select array_agg(a.attname order by k.ord) from pg_index i "
                "cross join unnest(i.indkey) with ordinality k(attnum, ord) "
                "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum "
                "where i.indrelid = %s::regclass and i.indisprimary",
                (f"crm.{e.name}",)))[0]
            assert tuple(pk) == e.primary_key, e.name
            indexed = conn.execute(
                "select indexdef from pg_indexes where schemaname = 'crm' and tablename = %s",
                (e.name,)).fetchall()
            assert any(f"({e.updated_column})" in d for (d,) in indexed), e.name


def _resolve(obj: Any, path: str) -> tuple[bool, Any]:
    """(found, value) for a dotted path with [i] indexes; None or [] on the way is null."""
    cur = obj
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if cur is None:
            return True, None
        if part.startswith("["):
            i = int(part[1:-1])
            if not isinstance(cur, list):
                return False, None
            if i >= len(cur):
                return True, None
            cur = cur[i]
        else:
            if not isinstance(cur, dict) or part not in cur:
                return False, None
            cur = cur[part]
    return True, cur


def _billing_rows(sample: Sample, shape: Shape) -> dict[str, list[dict[str, Any]]]:
    """Each billing entity's objects as the billing API answers them in `shape`."""
    subs = [present(s, shape) for s in sample.billing["subscription"]]
    invoices = [present(i, shape) for i in sample.billing["invoice"]]
    return {
        "customers": sample.billing["customer"],
        "subscriptions": subs,
        "subscription_items": [i for s in subs for i in s["items"]["data"]],
        "invoices": invoices,
        "invoice_lines": [li for i in invoices for li in i["lines"]["data"]],
        "prices": sample.billing["price"],
        "charges": sample.billing["charge"],
        "refunds": sample.billing["refund"],
        "disputes": sample.billing["dispute"],
    }


def _shape_of(version: str) -> Shape:
    """The shape the extractor reads at `version` (from clover on it expands coupons)."""
    shape = Shape.of(version)
    return replace(shape, expand=frozenset({"data.discount.source.coupon"})) \
        if shape.clover else shape


def _absent_in(version: str) -> set[tuple[str, str]]:
    """(entity, column) whose path objects of `version` lack (contracts.BILLING_SHAPES):
    the older shape's column from the version that moved it, the newer one's before."""
    out = set()
    for table, old, new, since in BILLING_SHAPES:
        if version[:10] >= since[:10]:
            out.add((table, old))
        elif "." not in new:  # a column of another entity (prices) is always there
            out.add((table, new))
    return out


def _id(value: Any) -> Any:
    """An expanded reference as the extractor keeps it: its id."""
    return value["id"] if isinstance(value, dict) and isinstance(value.get("id"), str) \
        else value


def test_billing_objects_are_stripe_shaped(sample: Sample) -> None:
    by_name = {e.name: e for e in BILLING_ENTITIES}
    ids = {"customers": "cus_", "subscriptions": "sub_", "subscription_items": "si_",
           "invoices": "in_", "invoice_lines": "il_", "charges": "ch_", "refunds": "re_",
           "disputes": "dp_"}
    id_patterns = {name: re.escape(prefix) + r"[0-9A-Za-z]{15}" for name, prefix in ids.items()}
    id_patterns["prices"] = r"price_[a-z0-9_]+"  # the catalog's readable price ids
    pinned = _billing_rows(sample, Shape.of(BILLING_API_VERSION))
    assert set(pinned) == set(by_name)  # every contract entity is checked
    # The store keeps the pinned version's shape; the columns of a later shape are read
    # from what the billing API answers in that shape, and hold the same values there.
    for version in (BILLING_API_VERSION, BASIL_API_VERSION, CLOVER_API_VERSION):
        rows = _billing_rows(sample, _shape_of(version))
        absent = _absent_in(version)
        for name, objs in rows.items():
            e = by_name[name]
            for o in objs:
                for c in e.columns:
                    found, value = _resolve(o, c.path)
                    if (name, c.name) in absent:  # lands as null in this shape
                        assert c.nullable, (version, name, c.name)
                        continue
                    assert found, f"{version} {name}.{c.name}: path {c.path} missing in {o['id']}"
                    if not c.nullable:
                        assert value is not None, (version, name, c.name, o["id"])
                assert re.fullmatch(id_patterns[name], o["id"]), (name, o["id"])
            assert len({o["id"] for o in objs}) == len(objs), name
        for table, old, new, since in BILLING_SHAPES:
            if "." in new or version[:10] < since[:10]:
                continue
            old_path, new_path = by_name[table].column(old).path, by_name[table].column(new).path
            assert all(_resolve(a, old_path)[1] == _id(_resolve(b, new_path)[1])
                       for a, b in zip(pinned[table], rows[table], strict=True)), \
                (version, table, new)
    # a price object for every price the items and lines embed, as embedded
    prices = {p["id"]: p for p in sample.billing["price"]}
    embedded = pinned["subscription_items"] + pinned["invoice_lines"]
    assert {o["price"]["id"] for o in embedded} == set(prices)
    assert all({**o["price"], "created": prices[o["price"]["id"]]["created"]}
               == prices[o["price"]["id"]] for o in embedded)
    assert all(prices[i["price"]["id"]]["created"] <= s["created"]
               for s in sample.billing["subscription"] for i in s["items"]["data"])
    account_ids = {a["account_id"] for a in sample.crm["accounts"]}
    for cus in sample.billing["customer"]:
        assert isinstance(cus["metadata"]["crm_account_id"], str)
        assert cus["metadata"]["crm_account_id"] in account_ids
    for sub in sample.billing["subscription"]:
        assert sub["items"]["has_more"] is False
        assert all(i["subscription"] == sub["id"] for i in sub["items"]["data"])
        assert sub["status"] in {"active", "past_due", "canceled"}
        d = sub["cancellation_details"]
        assert d["reason"] in STRIPE_REASON | {None}
        assert d["feedback"] in STRIPE_FEEDBACK | {None}
        if sub["status"] == "canceled":
            assert sub["ended_at"] is not None and sub["canceled_at"] <= sub["ended_at"]
        if sub["cancel_at_period_end"]:
            assert sub["cancel_at"] == sub["current_period_end"]
    for inv in sample.billing["invoice"]:
        assert inv["status"] in {"draft", "open", "paid", "uncollectible"}
        assert inv["lines"]["has_more"] is False
        for li in inv["lines"]["data"]:
            assert li["invoice"] == inv["id"] and li["subscription"] == inv["subscription"]
            assert isinstance(li["discount_amounts"], list)
        discount = sum(d["amount"] for li in inv["lines"]["data"] for d in li["discount_amounts"])
        assert inv["subtotal"] == sum(li["amount"] for li in inv["lines"]["data"])
        assert inv["total"] == inv["subtotal"] - discount
        assert inv["amount_paid"] == (inv["total"] if inv["status"] == "paid" else 0)
    charges_by_invoice = Counter(c["invoice"] for c in sample.billing["charge"])
    assert all(inv["attempt_count"] == charges_by_invoice[inv["id"]]
               for inv in sample.billing["invoice"])
    assert any(li["discount_amounts"] for inv in sample.billing["invoice"]
               for li in inv["lines"]["data"])
    assert {c["status"] for c in sample.billing["charge"]} == {"succeeded", "failed"}


def test_survey_exports_follow_the_contract(sample: Sample) -> None:
    iso = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00")
    headers = {e.name: e.column_names for e in SURVEY_ENTITIES}
    for f in sample.survey_files:
        m = re.fullmatch(r"(surveys|responses|exit_answers)_(\d{4}-\d{2}-\d{2})\.csv", f.name)
        assert m, f.name
        with open(f, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            assert next(reader) == headers[m[1]]
            body = list(reader)
        assert body, f.name
        if m[1] != "exit_answers":  # created_at / submitted_at: the export day
            assert all(iso.fullmatch(r[3]) and r[3][:10] == m[2] for r in body), f.name
    kinds = {s["survey_id"]: s["kind"] for s in sample.survey["surveys"]}
    assert set(kinds.values()) == {"relationship_nps", "ticket_csat", "onboarding", "exit"}
    responses = {r["response_id"]: r for r in sample.survey["responses"]}
    for r in sample.survey["responses"]:
        kind = kinds[r["survey_id"]]
        if kind == "exit":
            assert r["score"] == ""
        elif kind == "relationship_nps":
            assert 0 <= int(r["score"]) <= 10
        else:
            assert 1 <= int(r["score"]) <= 5
    for a in sample.survey["exit_answers"]:
        assert kinds[responses[a["response_id"]]["survey_id"]] == "exit"
        assert a["primary_reason"] in EXIT_REASON_OPTIONS
        others = a["other_reasons"].split(";") if a["other_reasons"] else []
        assert set(others) <= set(EXIT_REASON_OPTIONS) and a["primary_reason"] not in others


def test_nothing_is_dated_after_the_end_date(sample: Sample) -> None:
    end = datetime(2026, 11, 1, tzinfo=UTC)
    stamps = ("created_at", "updated_at", "occurred_at", "closed_at", "opened_at",
              "first_response_at", "resolved_at")
    for table, rows in sample.crm.items():
        for row in rows:
            for col in stamps:
                if row.get(col) is not None:
                    assert row[col] < end, (table, col, row)
            for col in ("snapshot_date", "go_live_date"):
                if row.get(col) is not None:
                    assert row[col] <= END, (table, col, row)
    for objs in sample.billing.values():
        assert max(o["created"] for o in objs) <= END_TS
    for sub in sample.billing["subscription"]:
        for k in ("start_date", "current_period_start", "canceled_at", "ended_at"):
            assert sub[k] is None or sub[k] <= END_TS, (k, sub["id"])
    for inv in sample.billing["invoice"]:
        assert inv["period_start"] <= END_TS
        assert all(v is None or v <= END_TS for v in inv["status_transitions"].values())
    last = max(r["submitted_at"] for r in sample.survey["responses"])
    assert datetime.fromisoformat(last) < end
    assert max(f.name[-14:-4] for f in sample.survey_files) <= END.isoformat()


# ---------------------------------------------------------------------------------------
# Planted truth and traces
# ---------------------------------------------------------------------------------------
@dataclass
class Index:
    subs_by_customer: dict[str, list[dict]]
    invoices_by_sub: dict[str, list[dict]]
    charges_by_invoice: dict[str, list[dict]]
    money_events: dict[str, list[int]]  # refunds and disputes per billing customer
    # keyed by CRM account id (text)
    tickets: dict[str, list[dict]]
    snapshots: dict[str, list[dict]]
    activities: dict[str, list[datetime]]
    deals: dict[str, dict]
    accounts: dict[str, dict]
    responses: dict[str, list[tuple[str, datetime, str]]]  # (kind, submitted, score)
    defections: list[dict]


@pytest.fixture(scope="module")
def index(sample: Sample) -> Index:
    return _index(sample)


def _index(sample: Sample) -> Index:
    subs = defaultdict(list)
    for s in sample.billing["subscription"]:
        subs[s["customer"]].append(s)
    invoices = defaultdict(list)
    for i in sample.billing["invoice"]:
        invoices[i["subscription"]].append(i)
    charges = defaultdict(list)
    by_charge = {}
    for c in sample.billing["charge"]:
        charges[c["invoice"]].append(c)
        by_charge[c["id"]] = c
    money = defaultdict(list)
    for x in sample.billing["refund"] + sample.billing["dispute"]:
        money[by_charge[x["charge"]]["customer"]].append(x["created"])
    email_account = {c["email"].lower(): c["account_id"] for c in sample.crm["contacts"]}
    kinds = {s["survey_id"]: s["kind"] for s in sample.survey["surveys"]}
    responses = defaultdict(list)
    for r in sample.survey["responses"]:
        account = email_account.get(r["respondent_email"].lower())
        if account is not None:
            responses[account].append((kinds[r["survey_id"]],
                                       datetime.fromisoformat(r["submitted_at"]), r["score"]))
    group = defaultdict(list)
    for name in ("tickets", "usage_snapshots"):
        for row in sample.crm[name]:
            group[name, row["account_id"]].append(row)
    activities = defaultdict(list)
    for a in sample.crm["activities"]:
        if not a["is_deleted"]:
            activities[a["account_id"]].append(a["occurred_at"])
    return Index(
        subs_by_customer=subs, invoices_by_sub=invoices, charges_by_invoice=charges,
        money_events=money,
        tickets={k[1]: v for k, v in group.items() if k[0] == "tickets"},
        snapshots={k[1]: sorted(v, key=lambda r: r["snapshot_date"])
                   for k, v in group.items() if k[0] == "usage_snapshots"},
        activities=activities,
        deals={d["account_id"]: d for d in sample.crm["deals"]
               if d["stage"] == "closed_won" and d["promised_go_live_date"] is not None},
        accounts={a["account_id"]: a for a in sample.crm["accounts"]},
        responses=responses,
        defections=[{**t, "account": t["crm_account_id"],
                     "day": date.fromisoformat(t["defection_date"]),
                     "causes": t["planted_causes"].split(";")} for t in sample.truth],
    )


def _day(ts: int) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def test_every_defection_matches_a_billing_ending(sample: Sample, index: Index) -> None:
    assert len(index.defections) > 50
    cus_account = {c["id"]: c["metadata"]["crm_account_id"]
                   for c in sample.billing["customer"]}
    for d in index.defections:
        assert cus_account[d["billing_customer_id"]] == d["account"]
        subs = {s["id"]: s for s in index.subs_by_customer[d["billing_customer_id"]]}
        ended = [subs[i] for i in d["subscription_ids"].split(";")]
        assert ended and all(s["status"] == "canceled" for s in ended)
        assert {_day(s["ended_at"]) for s in ended} == {d["day"]}
        # the last paid subscription: nothing else was running when these ended
        others = [s for s in subs.values() if s["id"] not in d["subscription_ids"]]
        assert not any(s["created"] < ended[0]["ended_at"] and
                       (s["ended_at"] is None or s["ended_at"] > ended[0]["ended_at"])
                       for s in others)
        assert d["requested_cancel_date"] <= d["defection_date"]
        assert _day(ended[0]["canceled_at"]).isoformat() == d["requested_cancel_date"]
        assert d["causes"] and set(d["causes"]) <= set(catalog.CAUSE_IDS)
        assert d["primary_cause"] == d["causes"][0]
        reason = ended[0]["cancellation_details"]["reason"]
        assert (d["involuntary"] == "true") == (reason == "payment_failed")
        assert (d["primary_cause"] == "financial_distress") == (d["involuntary"] == "true")


def _signals(d: dict, index: Index) -> set[str]:
    """Simple versions of the attribution rules, evaluated at the defection date."""
    a = d["account"]
    day = d["day"]
    stop = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    lo, lo_survey = stop - timedelta(days=90), stop - timedelta(days=180)
    found = set()
    account = index.accounts[a]
    for sub in index.subs_by_customer[d["billing_customer_id"]]:
        item = sub["items"]["data"][0]
        p = catalog.PRICE_BY_ID[item["price"]["id"]]
        if not p.is_addon and (item["quantity"] < p.min_seats
                               or account["employee_count"] < p.min_employees):
            found.add("poor_fit")
    deal = index.deals[a]
    late = deal["promised_go_live_date"] + timedelta(days=30)
    if (deal["go_live_date"] or date.max) > late and late < day:
        found.add("oversold")
    snaps = [s for s in index.snapshots.get(a, []) if s["snapshot_date"] < day]
    if len(snaps) >= 2 and all(s["active_users"] < 0.3 * s["licensed_seats"]
                               for s in snaps[-2:]):
        found.add("failed_adoption")
    tickets = [t for t in index.tickets.get(a, []) if lo <= t["opened_at"] < stop]
    if sum(t["category"] in ("bug", "outage") for t in tickets) >= 3 or any(
            t["category"] == "bug" and t["priority"] in ("high", "urgent")
            and t["resolved_at"] is None for t in tickets):
        found.add("product_issues")
    if any(t["csat_score"] is not None and t["csat_score"] <= 2 for t in tickets):
        found.add("poor_service")
    first = [(t["first_response_at"] - t["opened_at"]) / timedelta(hours=1)
             for t in tickets if t["first_response_at"]]
    fixed = [(t["resolved_at"] - t["opened_at"]) / timedelta(days=1)
             for t in tickets if t["resolved_at"]]
    if first and statistics.median(first) > 24 or fixed and statistics.median(fixed) > 5:
        found.add("slow_resolution")
    if any(t["category"] == "billing" for t in tickets) or any(
            lo.timestamp() <= x < stop.timestamp()
            for x in index.money_events[d["billing_customer_id"]]):
        found.add("hassle")
    touched = any(stop - timedelta(days=45) <= t < stop for t in index.activities[a])
    surveyed = any(k != "exit" and lo_survey <= t < stop for k, t, _ in index.responses[a])
    if not touched and not surveyed:
        found.add("neglect")
    if any(k == "relationship_nps" and lo_survey <= t < stop and int(s) <= 6
           for k, t, s in index.responses[a]):
        found.add("goals_unmet")
    for sub in index.subs_by_customer[d["billing_customer_id"]]:
        if sub["cancellation_details"]["reason"] == "payment_failed" and \
                _day(sub["ended_at"]) == day:
            found.add("financial_distress")
    return found


def test_planted_causes_leave_their_traces(index: Index) -> None:
    seen = Counter()
    for d in index.defections:
        signals = _signals(d, index)
        for cause in d["causes"]:
            if cause in catalog.STATED_ONLY:
                continue
            seen[cause] += 1
            assert cause in signals, (cause, d)
    observed = {c for c in catalog.CAUSE_IDS if c not in catalog.STATED_ONLY}
    assert set(seen) == observed  # every observed cause was planted at least once


def test_failed_adoption_and_dunning_traces_in_detail(index: Index) -> None:
    checked = Counter()
    for d in index.defections:
        if "failed_adoption" in d["causes"]:
            last_two = [s for s in index.snapshots[d["account"]]
                        if s["snapshot_date"] < d["day"]][-2:]
            assert len(last_two) == 2
            assert all(s["active_users"] / s["licensed_seats"] < 0.30 for s in last_two)
            checked["failed_adoption"] += 1
        if d["involuntary"] == "true":
            sub = next(s for s in index.subs_by_customer[d["billing_customer_id"]]
                       if s["id"] in d["subscription_ids"])
            unpaid = [i for i in index.invoices_by_sub[sub["id"]]
                      if i["status"] == "uncollectible"]
            assert len(unpaid) == 1 and unpaid[0]["attempt_count"] in (3, 4)
            fails = index.charges_by_invoice[unpaid[0]["id"]]
            assert {c["status"] for c in fails} == {"failed"}
            first = min(c["created"] for c in fails)
            assert 25 <= (sub["ended_at"] - first) / 86400 <= 31
            checked["financial_distress"] += 1
    assert checked["failed_adoption"] >= 5 and checked["financial_distress"] >= 3


def test_signals_rarely_fire_without_their_cause(index: Index) -> None:
    fired = Counter()
    for d in index.defections:
        for cause in _signals(d, index) - set(d["causes"]):
            fired[cause] += 1
    n = len(index.defections)
    assert all(v / n <= 0.05 for v in fired.values()), fired


def test_stated_reasons_and_business_shape(sample: Sample, index: Index) -> None:
    n_accounts = len(index.accounts)
    defections = index.defections
    assert 0.08 <= len(defections) / n_accounts <= 0.35
    voluntary = [d for d in defections if d["involuntary"] == "false"]
    feedback = {s["id"]: s["cancellation_details"]["feedback"]
                for s in sample.billing["subscription"]}
    exit_rate = len(sample.survey["exit_answers"]) / len(voluntary)
    assert 0.3 <= exit_rate <= 0.7
    with_feedback = [d for d in voluntary
                     if feedback[d["subscription_ids"].split(";")[0]] is not None]
    assert 0.45 <= len(with_feedback) / len(voluntary) <= 0.75
    # price and competitor leave no trace, so they are (almost) always stated
    stated_only = [d for d in voluntary if d["primary_cause"] in catalog.STATED_ONLY]
    stated = [d for d in stated_only if feedback[d["subscription_ids"].split(";")[0]] or any(
        k == "exit" and t.date() <= d["day"] for k, t, _ in index.responses[d["account"]])]
    assert stated_only and len(stated) / len(stated_only) >= 0.9
    # win-back: a new subscription after the defection
    won_back = [d for d in defections if any(
        _day(s["created"]) > d["day"] for s in index.subs_by_customer[d["billing_customer_id"]])]
    assert won_back
    # add-on only cancellations: canceled subscriptions that are not a defection
    in_truth = {s for d in defections for s in d["subscription_ids"].split(";")}
    addon_only = [s for s in sample.billing["subscription"]
                  if s["status"] == "canceled" and s["id"] not in in_truth]
    assert addon_only
    # yearly plans, coupons, seat changes
    intervals = Counter(s["items"]["data"][0]["price"]["recurring"]["interval"]
                        for s in sample.billing["subscription"])
    assert intervals["year"] > 0 and intervals["month"] > intervals["year"]
    assert any(s["discount"] for s in sample.billing["subscription"])
    assert any(len({li["quantity"] for i in invs for li in i["lines"]["data"]}) > 1
               for invs in index.invoices_by_sub.values())
    # identity noise: unmatched survey emails, billing emails differing in case
    contacts = {c["email"] for c in sample.crm["contacts"]}
    lowered = {e.lower() for e in contacts}
    emails = [r["respondent_email"] for r in sample.survey["responses"]]
    unmatched = sum(e.lower() not in lowered for e in emails) / len(emails)
    assert 0.01 <= unmatched <= 0.06
    assert any(c["email"] not in contacts and c["email"].lower() in lowered
               for c in sample.billing["customer"])
    # a few soft deletes in the CRM
    assert any(r["is_deleted"] for r in sample.crm["contacts"])
    assert any(r["is_deleted"] for r in sample.crm["activities"])


# ---------------------------------------------------------------------------------------
def test_cli_reports_bad_arguments(capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for argv, message in (
        (["--months", "0", "--crm-url", "postgresql://x"], "months must be from 1 to 120"),
        (["--customers", "ten", "--crm-url", "postgresql://x"], "customers must be a whole"),
        (["--end-date", "2026-13-01", "--crm-url", "postgresql://x"], "YYYY-MM-DD"),
    ):
        with pytest.raises(SystemExit) as exc:
            sample_cli(argv)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
    monkeypatch.delenv("CRM_URL", raising=False)
    with pytest.raises(SystemExit) as exc:
        sample_cli(["--customers", "5"])
    assert exc.value.code == 2
    assert "--crm-url is required" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# The hard sample: the noise of a real business
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hard(module_database, tmp_path_factory: pytest.TempPathFactory) -> Sample:
    url = module_database("dwtest_sample_hard")
    folder = tmp_path_factory.mktemp("sample_hard")
    params = SampleParams(customers=1000, months=12, seed=42, end_date=END, difficulty="hard")
    return _read_sample(Run(folder, url, generate(params, folder, url, progress=None)))


def _voluntary_stated_rates(s: Sample) -> tuple[float, float]:
    """Exit-survey answers and billing feedback per voluntary defection."""
    voluntary = [d for d in s.truth if d["involuntary"] == "false"]
    feedback = {x["id"]: x["cancellation_details"]["feedback"] for x in s.billing["subscription"]}
    with_feedback = sum(1 for d in voluntary
                        if feedback[d["subscription_ids"].split(";")[0]] is not None)
    return len(s.survey["exit_answers"]) / len(voluntary), with_feedback / len(voluntary)


def _healthy_share(s: Sample, fires) -> float:
    """Share of the accounts that never defected for which `fires(account)` holds."""
    left = {d["crm_account_id"] for d in s.truth}
    healthy = [a for a in s.crm["accounts"] if a["account_id"] not in left]
    return sum(1 for a in healthy if fires(a["account_id"])) / len(healthy)


def test_hard_sample_carries_the_noise_of_a_real_business(sample: Sample, hard: Sample) -> None:
    # billing customers created without their CRM account id
    unlinked = [c for c in hard.billing["customer"] if "crm_account_id" not in c["metadata"]]
    assert 0.02 <= len(unlinked) / len(hard.billing["customer"]) <= 0.07
    assert all("crm_account_id" in c["metadata"] for c in sample.billing["customer"])
    # mostly silent defectors, and fewer of them than in the standard sample
    exit_rate, feedback_rate = _voluntary_stated_rates(hard)
    standard_exit, standard_feedback = _voluntary_stated_rates(sample)
    assert exit_rate <= 0.25 < standard_exit
    assert feedback_rate <= 0.45 < standard_feedback

    # healthy customers with slow first responses and bad ratings
    def slow_or_bad(s: Sample):
        tickets = defaultdict(list)
        for t in s.crm["tickets"]:
            tickets[t["account_id"]].append(t)
        return lambda account: any(
            t["first_response_at"] is not None
            and t["first_response_at"] - t["opened_at"] > timedelta(hours=24)
            or t["csat_score"] is not None and t["csat_score"] <= 2
            for t in tickets[account])
    assert _healthy_share(hard, slow_or_bad(hard)) >= 2 * _healthy_share(sample,
                                                                          slow_or_bad(sample))

    # low-touch small accounts: touched every 60 days or less often as their normal
    def low_touch(s: Sample):
        touches = defaultdict(list)
        for a in s.crm["activities"]:
            touches[a["account_id"]].append(a["occurred_at"])
        segment = {a["account_id"]: a["segment"] for a in s.crm["accounts"]}

        def fires(account: str) -> bool:
            times = sorted(touches[account])
            gaps = [(b - a).days for a, b in zip(times, times[1:], strict=False)]
            return segment[account] == "smb" and len(gaps) >= 2 and min(gaps) >= 45
        return fires
    assert _healthy_share(hard, low_touch(hard)) >= 0.1
    assert _healthy_share(sample, low_touch(sample)) == 0


def test_hard_sample_still_plants_traces_for_its_causes(hard: Sample) -> None:
    index = _index(hard)
    for d in index.defections:
        signals = _signals(d, index)
        for cause in d["causes"]:
            if cause not in catalog.STATED_ONLY:
                assert cause in signals, (cause, d)


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="customers"):
        SampleParams(customers=0)
    with pytest.raises(ValueError, match="months"):
        SampleParams(months=121)
    with pytest.raises(ValueError, match="end_date"):
        SampleParams(end_date="2026-10-31")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="difficulty must be one of standard, hard"):
        SampleParams(difficulty="nightmare")
