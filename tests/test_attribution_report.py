"""Matching and scoring of the attribution report on a tiny hand-made input (no database)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from defection_warehouse.sample.attribution_report import (
    AttributedDefection,
    CauseWeight,
    evaluate,
    format_comparison,
    format_report,
    read_truth,
    write_json,
)

TRUTH_CSV = """\
crm_account_id,billing_customer_id,subscription_ids,requested_cancel_date,defection_date,involuntary,planted_causes,primary_cause
1,cus_a,sub_a,2026-01-02,2026-01-05,false,oversold;failed_adoption,oversold
2,cus_b,sub_b,2026-02-01,2026-02-10,false,price,price
3,cus_c,sub_c,2026-03-01,2026-03-01,true,financial_distress,financial_distress
4,cus_d,sub_d,2026-04-01,2026-04-03,false,neglect,neglect
5,cus_e,sub_e,2026-05-01,2026-05-20,false,hassle,hassle
"""


def _a(cid: str, day: str, *causes: tuple[str, float, int]) -> AttributedDefection:
    return AttributedDefection(f"d_{cid}_{day}", cid, date.fromisoformat(day),
                               [CauseWeight(c, w, r) for c, w, r in causes])


@pytest.fixture
def truth(tmp_path):
    path = tmp_path / "planted_truth.csv"
    path.write_text(TRUTH_CSV, encoding="utf-8")
    return read_truth(path)


def test_read_truth_splits_causes(truth):
    assert [t.customer_id for t in truth] == ["cus_a", "cus_b", "cus_c", "cus_d", "cus_e"]
    assert truth[0].causes == ("oversold", "failed_adoption")
    assert truth[0].primary_cause == "oversold"
    assert truth[0].defection_date == date(2026, 1, 5)
    assert truth[2].involuntary is True


def test_agreement_unexplained_and_matching(truth, tmp_path):
    attributed = [
        # top is a planted but not the primary cause: agrees
        _a("cus_a", "2026-01-05", ("failed_adoption", 0.6, 1), ("oversold", 0.4, 2)),
        # a misleading statement wins: disagrees
        _a("cus_b", "2026-02-10", ("competitor", 0.7, 1), ("price", 0.3, 2)),
        # tie on weight: the warehouse's rank decides (financial_distress ranks first)
        _a("cus_c", "2026-03-01", ("hassle", 0.5, 2), ("financial_distress", 0.5, 1)),
        # no evidence at all
        _a("cus_d", "2026-04-03", ("unexplained", 1.0, 1)),
        # same customer, different date: not a match (cus_e stays unmatched on both sides)
        _a("cus_e", "2026-05-21", ("hassle", 1.0, 1)),
        # a defection the truth does not know
        _a("cus_z", "2026-06-01", ("price", 1.0, 1)),
    ]
    report = evaluate(attributed, truth)

    assert report.matched == 4
    assert report.unmatched_truth == 1
    assert report.unmatched_warehouse == 2
    assert report.top_in_planted == 2  # cus_a and cus_c
    assert report.top_cause_agreement == 0.5
    assert report.unexplained == 1
    assert report.unexplained_share == 0.25
    assert report.top_is_primary == 1  # only cus_c

    s = report.by_primary_cause["price"]
    assert (s.defections, s.top_in_planted, dict(s.top_causes)) == (1, 0, {"competitor": 1})
    assert report.by_top_cause["competitor"] == (1, 0)
    assert report.by_top_cause["failed_adoption"] == (1, 1)

    out = tmp_path / "bench" / "attribution.json"
    write_json(report, out)
    payload = json.loads(out.read_text())
    assert payload["top_cause_agreement"] == 0.5
    assert payload["unexplained_share"] == 0.25
    assert payload["matched"] == 4
    assert payload["unmatched_truth"] == 1
    assert payload["unmatched_warehouse"] == 2
    assert "top_cause_agreement: 0.5000" in format_report(report)


def test_defection_without_cause_rows_counts_as_unexplained(truth):
    report = evaluate([_a("cus_b", "2026-02-10")], truth)
    assert report.matched == 1
    assert report.unexplained_share == 1.0
    assert report.top_cause_agreement == 0.0


def test_empty_input_gives_zero_not_division_error(truth):
    report = evaluate([], truth)
    assert report.matched == 0
    assert report.top_cause_agreement == 0.0
    assert report.unexplained_share == 0.0
    assert report.unmatched_truth == len(truth)


def test_weighted_overlap_counts_the_primary_twice(truth):
    # cus_a planted oversold (primary) and failed_adoption: planted weights 2/3 and 1/3
    assert truth[0].planted_weights() == pytest.approx(
        {"oversold": 2 / 3, "failed_adoption": 1 / 3})
    attributed = [
        # 0.4 on the primary (min with 2/3) + 0.6 on the other (min with 1/3)
        _a("cus_a", "2026-01-05", ("failed_adoption", 0.6, 1), ("oversold", 0.4, 2)),
        # the planted cause alone: full overlap
        _a("cus_b", "2026-02-10", ("price", 1.0, 1)),
        # nothing in common
        _a("cus_c", "2026-03-01", ("hassle", 1.0, 1)),
        # unexplained shares nothing with a planted cause
        _a("cus_d", "2026-04-03"),
    ]
    report = evaluate(attributed, truth)
    assert report.matched == 4
    assert report.weighted_overlap == pytest.approx((0.4 + 1 / 3 + 1.0 + 0 + 0) / 4, abs=1e-6)
    assert report.primary_cause_agreement == 0.25  # only cus_b
    s = report.by_primary_cause["oversold"]
    assert s.as_dict()["weighted_overlap"] == pytest.approx(0.4 + 1 / 3, abs=1e-6)
    assert "weighted_overlap: 0.4333" in format_report(report)


def test_confident_attributions_are_scored_apart(truth):
    attributed = [
        AttributedDefection("d_a", "cus_a", date(2026, 1, 5),
                            [CauseWeight("oversold", 1.0, 1)], confidence="confident"),
        AttributedDefection("d_b", "cus_b", date(2026, 2, 10),
                            [CauseWeight("competitor", 1.0, 1)], confidence="confident"),
        AttributedDefection("d_c", "cus_c", date(2026, 3, 1),
                            [CauseWeight("hassle", 1.0, 1)], confidence="tentative"),
    ]
    report = evaluate(attributed, truth)
    assert (report.confident, report.confident_top_in_planted) == (2, 1)
    assert report.confident_share == round(2 / 3, 6)
    assert report.confident_top_cause_agreement == 0.5


def test_comparison_puts_samples_side_by_side(truth):
    standard = evaluate([_a("cus_b", "2026-02-10", ("price", 1.0, 1))], truth).as_dict()
    hard = evaluate([_a("cus_b", "2026-02-10", ("competitor", 1.0, 1))], truth).as_dict()
    table = format_comparison({"standard": standard, "hard": hard})
    lines = table.splitlines()
    assert lines[0].split() == ["figure", "standard", "hard"]
    agreement = next(line for line in lines if line.startswith("top cause among the planted"))
    assert agreement.split()[-2:] == ["1.0000", "0.0000"]
    assert lines[-1].split()[-2:] == ["1", "1"]
