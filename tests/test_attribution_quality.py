"""Attribution quality on real builds of the sample business, against its planted truth.

The standard sample (2,000 customers, 24 months, seed 42: the demo's) and the hard one
(the same size with the noise of a real business: healthy customers with slow, badly rated
and bug tickets, low-touch small accounts, mostly silent defectors, face-saving reasons,
accounts without a CRM link) each go through the real extract and load, and dbt builds
every model. The figures are the attribution report's (sample/attribution_report.py):

- standard: no figure below what the rules scored before they learnt from the customers
  who stayed (top cause among the planted causes 0.9669, top cause the planted primary
  0.9146, weighted overlap 0.9321, unexplained 0.0052);
- hard: top cause among the planted causes at least 0.85, weighted overlap at least 0.65,
  unexplained at most 0.05;
- both: the at-risk list flags at most a quarter of the paying customers, and on the hard
  sample its backtest (3 and 6 months back) finds defectors at least twice as often as
  picking customers at random.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.db import one_row
from defection_warehouse.sample import SampleParams
from defection_warehouse.sample.attribution_report import evaluate, read_attribution, read_truth
from tests.builders import build_sample_warehouse

pytestmark = pytest.mark.slow

END = date(2026, 10, 31)
SCHEMA = "analytics_build"
# what the standard sample's 574 defections scored before (the seeds' strengths, no lift):
# top cause among the planted causes 555, the planted primary 525, unexplained 3,
# weighted overlap 0.932113
STANDARD_BEFORE = {"top_in_planted": 555, "top_is_primary": 525, "unexplained": 3,
                   "weighted_overlap": 0.932113}


@pytest.fixture(scope="module", params=["standard", "hard"])
def built(request, module_database, tmp_path_factory) -> tuple[str, str, Path]:
    difficulty = request.param
    root = tmp_path_factory.mktemp(f"quality_{difficulty}")
    crm = module_database(f"dwtest_quality_{difficulty}_crm")
    url = module_database(f"dwtest_quality_{difficulty}_wh")
    params = SampleParams(customers=2000, months=24, seed=42, end_date=END,
                          difficulty=difficulty)
    build_sample_warehouse(root, crm, url, params, schema=SCHEMA)
    return difficulty, url, root / "sample" / "planted_truth.csv"


def test_attribution_recovers_the_planted_causes(built) -> None:
    difficulty, url, truth = built
    report = evaluate(read_attribution(url, SCHEMA), read_truth(truth))
    assert report.matched == report.truth_defections > 500
    assert report.unmatched_warehouse == 0
    figures = report.as_dict()
    if difficulty == "standard":
        assert report.matched == 574
        assert report.top_in_planted >= STANDARD_BEFORE["top_in_planted"], figures
        assert report.top_is_primary >= STANDARD_BEFORE["top_is_primary"], figures
        assert report.unexplained <= STANDARD_BEFORE["unexplained"], figures
        assert report.weighted_overlap >= STANDARD_BEFORE["weighted_overlap"], figures
    else:
        assert figures["top_cause_agreement"] >= 0.85, figures
        assert figures["weighted_overlap"] >= 0.65, figures
        assert figures["unexplained_share"] <= 0.05, figures
    # a confident attribution is right more often than the rest
    assert report.confident_top_cause_agreement > report.top_cause_agreement


def test_at_risk_list_is_short_and_has_a_track_record(built) -> None:
    difficulty, url, _ = built
    with psycopg.connect(url) as conn:
        flagged, listed = conn.execute(
            f"select count(*) filter (where is_flagged), count(*) "
            f"from {SCHEMA}.mart_accounts_at_risk").fetchone()
        paying = one_row(conn.execute(
            f"select count(*) from {SCHEMA}.fct_customer_mrr_monthly "
            f"where month = %s and mrr > 0", (END.replace(day=1),)))[0]
        backtest = conn.execute(
            f"select months_back, scored_customers, flagged_customers, defected_customers, "
            f"flagged_defected_customers, precision, recall, base_rate, lift, "
            f"is_horizon_complete from {SCHEMA}.kpi_at_risk_backtest "
            f"order by months_back").fetchall()
    assert 0 < flagged <= listed
    assert flagged <= 0.25 * paying
    assert [row[0] for row in backtest] == [3, 6]
    for (_months, scored, flagged_then, defected, hits, precision, recall, base_rate, lift,
         complete) in backtest:
        assert complete
        assert 0 < flagged_then <= 0.25 * scored
        assert float(precision) == pytest.approx(hits / flagged_then)
        assert float(recall) == pytest.approx(hits / defected)
        assert float(base_rate) == pytest.approx(defected / scored)
        assert float(lift) == pytest.approx(float(precision) / float(base_rate))
        assert float(lift) >= 2, (difficulty, backtest)
