"""How well cause attribution recovers the causes planted in the sample business.

Reads fct_defection_causes (with int_defections for each defection's billing customer and
date) from the warehouse and the sample generator's planted truth CSV (which is never
loaded into the warehouse), matches defections on (billing customer id, defection date)
and reports:

- ``top_cause_agreement``: share of matched defections whose top attributed cause is one
  of the causes planted for that defection;
- ``primary_cause_agreement``: share whose top attributed cause is the planted primary;
- ``weighted_overlap``: mean over matched defections of the sum over causes of
  min(published weight, planted weight), 1 when the weights agree exactly. The planted
  weights count the primary cause twice and every other planted cause once (a primary
  cause alone weighs 1; with one other 2/3 and 1/3; with two others 1/2, 1/4 and 1/4), as
  the generator makes the primary cause the strongest;
- ``unexplained_share``: share of matched defections attributed to ``unexplained``;
- ``confident_share`` and ``confident_top_cause_agreement``: the share of matched
  defections whose attribution the warehouse calls confident
  (``fct_defections.attribution_confidence``) and the agreement among them;
- matched / unmatched counts and a per-cause confusion summary.

``format_comparison`` puts the headline figures of several samples (the standard and the
hard one, each measured on its own warehouse) side by side.

Usage::

    python -m defection_warehouse.sample.attribution_report --warehouse-url URL \\
        --truth .data/sample/planted_truth.csv [--schema analytics] [--out bench/attribution.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

UNEXPLAINED = "unexplained"


@dataclass(frozen=True)
class PlantedDefection:
    """One row of the planted truth: a defection and the causes behind it."""

    customer_id: str
    defection_date: date
    causes: tuple[str, ...]
    primary_cause: str
    involuntary: bool = False

    def planted_weights(self) -> dict[str, float]:
        """The primary cause counts twice, every other planted cause once."""
        shares = {c: (2.0 if c == self.primary_cause else 1.0) for c in self.causes}
        if self.primary_cause and self.primary_cause not in shares:
            shares[self.primary_cause] = 2.0
        total = sum(shares.values())
        return {c: w / total for c, w in shares.items()} if total else {}


@dataclass(frozen=True)
class CauseWeight:
    cause_id: str
    weight: float
    cause_rank: int = 1


@dataclass
class AttributedDefection:
    """A defection in the warehouse with its attributed causes."""

    defection_id: str
    customer_id: str
    defection_date: date
    causes: list[CauseWeight] = field(default_factory=list)
    confidence: str | None = None

    @property
    def top_cause(self) -> str:
        """Highest weight; ties go to the warehouse's cause_rank, then the cause id."""
        if not self.causes:
            return UNEXPLAINED
        best = min(self.causes, key=lambda c: (-c.weight, c.cause_rank, c.cause_id))
        return best.cause_id

    def overlap(self, planted: dict[str, float]) -> float:
        """Sum over causes of min(published weight, planted weight)."""
        published: dict[str, float] = defaultdict(float)
        for c in self.causes:
            published[c.cause_id] += c.weight
        if not published:
            published[UNEXPLAINED] = 1.0
        return sum(min(w, planted.get(cause, 0.0)) for cause, w in published.items())


@dataclass
class CauseSummary:
    """Per planted primary cause: how often attribution put a planted cause on top."""

    defections: int = 0
    top_in_planted: int = 0
    top_is_primary: int = 0
    overlap: float = 0.0
    top_causes: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "defections": self.defections,
            "top_cause_agreement": _share(self.top_in_planted, self.defections),
            "top_is_primary": _share(self.top_is_primary, self.defections),
            "weighted_overlap": _mean(self.overlap, self.defections),
            "top_causes": dict(self.top_causes.most_common()),
        }


@dataclass
class Report:
    truth_defections: int
    warehouse_defections: int
    matched: int
    unmatched_truth: int
    unmatched_warehouse: int
    top_in_planted: int
    top_is_primary: int
    unexplained: int
    overlap_sum: float
    confident: int
    confident_top_in_planted: int
    by_primary_cause: dict[str, CauseSummary]
    # attributed top cause -> (times it was top, times it was one of the planted causes)
    by_top_cause: dict[str, tuple[int, int]]

    @property
    def top_cause_agreement(self) -> float:
        return _share(self.top_in_planted, self.matched)

    @property
    def unexplained_share(self) -> float:
        return _share(self.unexplained, self.matched)

    @property
    def primary_cause_agreement(self) -> float:
        return _share(self.top_is_primary, self.matched)

    @property
    def weighted_overlap(self) -> float:
        return _mean(self.overlap_sum, self.matched)

    @property
    def confident_share(self) -> float:
        return _share(self.confident, self.matched)

    @property
    def confident_top_cause_agreement(self) -> float:
        return _share(self.confident_top_in_planted, self.confident)

    def as_dict(self) -> dict[str, object]:
        return {
            "top_cause_agreement": self.top_cause_agreement,
            "unexplained_share": self.unexplained_share,
            "primary_cause_agreement": self.primary_cause_agreement,
            "weighted_overlap": self.weighted_overlap,
            "confident_share": self.confident_share,
            "confident_top_cause_agreement": self.confident_top_cause_agreement,
            "matched": self.matched,
            "unmatched_truth": self.unmatched_truth,
            "unmatched_warehouse": self.unmatched_warehouse,
            "truth_defections": self.truth_defections,
            "warehouse_defections": self.warehouse_defections,
            "top_in_planted": self.top_in_planted,
            "unexplained": self.unexplained,
            "by_primary_cause": {k: v.as_dict() for k, v in sorted(self.by_primary_cause.items())},
            "by_top_cause": {
                k: {"top": top, "precision": _share(hit, top)}
                for k, (top, hit) in sorted(self.by_top_cause.items())
            },
        }


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _mean(total: float, count: int) -> float:
    return round(total / count, 6) if count else 0.0


def read_truth(path: str | Path) -> list[PlantedDefection]:
    """The planted truth CSV the sample generator writes."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            causes = tuple(c for c in (row.get("planted_causes") or "").split(";") if c)
            primary = row.get("primary_cause") or (causes[0] if causes else "")
            rows.append(PlantedDefection(
                customer_id=row["billing_customer_id"],
                defection_date=date.fromisoformat(row["defection_date"]),
                causes=causes or ((primary,) if primary else ()),
                primary_cause=primary,
                involuntary=(row.get("involuntary") or "").lower() == "true",
            ))
    return rows


def evaluate(attributed: Iterable[AttributedDefection],
             truth: Iterable[PlantedDefection]) -> Report:
    """Match defections on (customer id, defection date) and score the top causes."""
    attributed = list(attributed)
    truth = list(truth)
    by_key: dict[tuple[str, date], AttributedDefection] = {}
    for a in attributed:
        by_key[(a.customer_id, a.defection_date)] = a
    truth_keys = {(t.customer_id, t.defection_date) for t in truth}

    matched = top_in = top_primary = unexplained = 0
    overlap_sum = 0.0
    confident = confident_top_in = 0
    per_primary: dict[str, CauseSummary] = defaultdict(CauseSummary)
    per_top: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in truth:
        found = by_key.get((t.customer_id, t.defection_date))
        if found is None:
            continue
        a = found
        matched += 1
        top = a.top_cause
        hit = top in t.causes
        top_in += hit
        top_primary += top == t.primary_cause
        unexplained += top == UNEXPLAINED
        if a.confidence == "confident":
            confident += 1
            confident_top_in += hit
        overlap = a.overlap(t.planted_weights())
        overlap_sum += overlap
        s = per_primary[t.primary_cause]
        s.overlap += overlap
        s.defections += 1
        s.top_in_planted += hit
        s.top_is_primary += top == t.primary_cause
        s.top_causes[top] += 1
        per_top[top][0] += 1
        per_top[top][1] += hit
    return Report(
        truth_defections=len(truth),
        warehouse_defections=len(by_key),
        matched=matched,
        unmatched_truth=len(truth) - matched,
        unmatched_warehouse=sum(1 for k in by_key if k not in truth_keys),
        top_in_planted=top_in,
        top_is_primary=top_primary,
        unexplained=unexplained,
        overlap_sum=overlap_sum,
        confident=confident,
        confident_top_in_planted=confident_top_in,
        by_primary_cause=dict(per_primary),
        by_top_cause={k: (v[0], v[1]) for k, v in per_top.items()},
    )


def read_attribution(warehouse_url: str, schema: str = "analytics") -> list[AttributedDefection]:
    """Every defection of fct_defections with its rows of fct_defection_causes (and its
    attribution_confidence, where the warehouse has one)."""
    from psycopg import sql

    from defection_warehouse.db import connect, one_row

    out: dict[str, AttributedDefection] = {}
    with connect(warehouse_url) as conn:
        has_confidence = one_row(conn.execute(
            "select exists (select from information_schema.columns where table_schema = %s"
            " and table_name = 'fct_defections' and column_name = 'attribution_confidence')",
            (schema,)))[0]
        query = sql.SQL(
            "select d.defection_id, d.customer_id, d.defection_date, {confidence},"
            " c.cause_id, c.weight::float8, c.cause_rank"
            " from {defections} as d"
            " left join {causes} as c on c.defection_id = d.defection_id"
            " order by d.defection_id, c.cause_rank"
        ).format(
            confidence=sql.SQL("d.attribution_confidence" if has_confidence else "null::text"),
            defections=sql.Identifier(schema, "fct_defections"),
            causes=sql.Identifier(schema, "fct_defection_causes"),
        )
        for defection_id, customer_id, day, confidence, cause_id, weight, rank in \
                conn.execute(query):
            a = out.setdefault(defection_id, AttributedDefection(
                defection_id, customer_id, day, confidence=confidence))
            if cause_id is not None:
                a.causes.append(CauseWeight(cause_id, float(weight), int(rank)))
    return list(out.values())


def format_report(report: Report) -> str:
    lines = [
        f"defections: truth {report.truth_defections}, warehouse "
        f"{report.warehouse_defections}, matched {report.matched}, unmatched truth "
        f"{report.unmatched_truth}, unmatched warehouse {report.unmatched_warehouse}",
        f"top_cause_agreement: {report.top_cause_agreement:.4f} "
        f"({report.top_in_planted}/{report.matched} top cause is a planted cause)",
        f"primary_cause_agreement: {report.primary_cause_agreement:.4f}",
        f"weighted_overlap: {report.weighted_overlap:.4f}",
        f"unexplained_share: {report.unexplained_share:.4f} "
        f"({report.unexplained}/{report.matched})",
        f"confident_share: {report.confident_share:.4f} ({report.confident}/{report.matched}); "
        f"top cause agreement among them {report.confident_top_cause_agreement:.4f}",
        "",
        f"{'planted primary cause':<22}{'n':>5}{'agree':>8}{'primary':>9}{'overlap':>9}  "
        "attributed top causes",
    ]
    for cause, s in sorted(report.by_primary_cause.items(), key=lambda kv: -kv[1].defections):
        tops = ", ".join(f"{c} {n}" for c, n in s.top_causes.most_common(4))
        lines.append(f"{cause:<22}{s.defections:>5}"
                     f"{_share(s.top_in_planted, s.defections):>8.2f}"
                     f"{_share(s.top_is_primary, s.defections):>9.2f}"
                     f"{_mean(s.overlap, s.defections):>9.2f}  {tops}")
    lines += ["", f"{'attributed top cause':<22}{'n':>5}{'precision':>11}"]
    for cause, (top, hit) in sorted(report.by_top_cause.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{cause:<22}{top:>5}{_share(hit, top):>11.2f}")
    return "\n".join(lines)


HEADLINE = (
    ("top cause is the planted primary", "primary_cause_agreement"),
    ("top cause among the planted causes", "top_cause_agreement"),
    ("weighted overlap", "weighted_overlap"),
    ("unexplained share", "unexplained_share"),
    ("confident share", "confident_share"),
    ("agreement among confident", "confident_top_cause_agreement"),
)


def format_comparison(results: dict[str, dict[str, object]]) -> str:
    """The headline figures of several samples side by side, one column per sample."""
    names = list(results)
    lines = [f"{'figure':<36}" + "".join(f"{n:>12}" for n in names)]
    for label, key in HEADLINE:
        cells = []
        for n in names:
            value = results[n].get(key)
            cells.append(f"{value:>12.4f}" if isinstance(value, int | float) else f"{'-':>12}")
        lines.append(f"{label:<36}" + "".join(cells))
    lines.append(f"{'defections matched':<36}"
                 + "".join(f"{results[n].get('matched', '-'):>12}" for n in names))
    return "\n".join(lines)


def write_json(report: Report, path: str | Path, extra: dict[str, object] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**report.as_dict(), **(extra or {})}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m defection_warehouse.sample.attribution_report",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--warehouse-url", required=True, help="postgresql://... of the warehouse")
    p.add_argument("--truth", required=True, help="planted truth CSV of the sample")
    p.add_argument("--schema", default="analytics",
                   help="schema the marts are read from (the published one)")
    p.add_argument("--out", default="bench/attribution.json", help="JSON file to write")
    args = p.parse_args(argv)

    report = evaluate(read_attribution(args.warehouse_url, args.schema), read_truth(args.truth))
    print(format_report(report))
    write_json(report, args.out, {"schema": args.schema, "truth": str(args.truth)})
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
