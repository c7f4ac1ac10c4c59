"""The quality gate on a real PostgreSQL.

A small generated business goes through the real extract and load and dbt builds its
marts, once per module. Each case runs on a copy of that warehouse (a database cloned
from it), plants one fault and checks that the gate fails on exactly that fault, with a
message naming the suite, the table, the expectation and what was observed; the clean
copy passes. The GX project is a temporary copy, so runs leave the repository untouched.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from defection_warehouse.db import one_row
from defection_warehouse.quality.gate import (
    EXPECTATIONS_DIR,
    GateOptions,
    GateReport,
    QualityGateFailed,
    stale_suites,
    validate_build,
    validate_raw,
)
from defection_warehouse.sample import SampleParams
from defection_warehouse.sources.contracts import ENTITIES
from defection_warehouse.transform.dbt_runner import run_dbt
from tests.builders import build_sample_warehouse

END = date(2026, 3, 31)
BUILD = "analytics_build"


# ------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def template(module_database, tmp_path_factory) -> str:
    """A loaded and built warehouse that cases clone and never change themselves."""
    root = tmp_path_factory.mktemp("gate")
    crm = module_database("dwtest_gate_crm")
    url = module_database("dwtest_gate_wh")
    params = SampleParams(customers=300, months=16, seed=23, end_date=END)
    build_sample_warehouse(root, crm, url, params, schema=BUILD)
    return url


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the committed GX project (configuration and suites only)."""
    root = tmp_path_factory.mktemp("gx_project")
    shutil.copytree(EXPECTATIONS_DIR / "gx", root / "gx",
                    ignore=shutil.ignore_patterns("uncommitted"))
    return root


@pytest.fixture
def options(project: Path) -> GateOptions:
    return GateOptions(project_dir=project, build_data_docs=False)


@pytest.fixture
def db(template: str, new_database) -> str:
    """A private copy of the built warehouse."""
    return new_database.clone(template, "dwtest_gate")


def _execute(url: str, *statements: str) -> None:
    """Plant a fault; every statement must change something."""
    with psycopg.connect(url) as conn:
        for statement in statements:
            cur = conn.execute(statement)
            assert cur.rowcount != 0, statement


def _raw_fails(url: str, options: GateOptions, sources: tuple[str, ...],
               day: date = END) -> tuple[str, GateReport]:
    with pytest.raises(QualityGateFailed) as failed:
        validate_raw(url, day, run_id="test__raw", sources=sources, options=options)
    return str(failed.value), failed.value.report


def _build_fails(url: str, options: GateOptions) -> tuple[str, GateReport]:
    with pytest.raises(QualityGateFailed) as failed:
        validate_build(url, BUILD, END, run_id="test__build", options=options)
    return str(failed.value), failed.value.report


def _failed(report: GateReport) -> set[tuple[str, str, str]]:
    return {(f.suite, f.expectation, str(f.kwargs.get("column", f.kwargs.get("query", ""))))
            for f in report.failures}


def _one_failure(report: GateReport, suite: str, expectation: str) -> str:
    found = [f for f in report.failures if f.suite == suite and f.expectation == expectation]
    assert len(found) == 1, report.summary()
    return found[0].message


# ------------------------------------------------------------------------ clean data
def test_suites_match_their_definitions() -> None:
    assert stale_suites() == [], "run `python -m defection_warehouse.quality.gate write-suites`"


def test_clean_load_and_build_pass_and_are_recorded(db: str, project: Path) -> None:
    docs = project / "docs_site"
    options = GateOptions(project_dir=project, data_docs_dir=docs)
    config = (project / "gx" / "great_expectations.yml").read_text()

    raw = validate_raw(db, END, run_id="test__clean", options=options)
    assert raw.success and not raw.failures and not raw.warnings, raw.summary()
    assert {r.table for r in raw.results} == {e.raw_table for e in ENTITIES}
    fresh = [r for r in raw.results if r.check == "freshness"]
    assert fresh and all(r.success for r in fresh)
    assert any(r.table == "raw_crm.activities" and r.batch == "batches 2026-02-26..2026-03-31"
               for r in fresh)
    # The first load has no history: the volume check says it was skipped.
    assert "raw_billing.customers too little history (0 of the 2 previous batches" \
        in raw.notes[0]
    assert raw.data_docs == str(docs / "index.html") and Path(raw.data_docs).exists()

    build = validate_build(db, BUILD, END, run_id="test__clean", options=options)
    assert build.success and not build.failures, build.summary()
    assert len({r.table for r in build.results}) == 11
    with psycopg.connect(db) as conn:
        # Valid values outside 0..1 exist and did not trip the gate.
        negative_net, fast = conn.execute(
            f"select count(*) filter (where net_mrr_churn_rate < 0), "
            f"count(*) filter (where quick_ratio > 1) from {BUILD}.kpi_retention_monthly"
        ).fetchone()
        recorded = conn.execute(
            "select gate, count(*), bool_and(success) from dw_meta.gate_results "
            "where run_id = 'test__clean' group by gate order by gate").fetchall()
    assert negative_net > 0 and fast > 0
    assert recorded == [("build", len(build.results), True), ("raw", len(raw.results), True)]

    # Nothing about the connection reached the project, and its configuration is intact.
    assert (project / "gx" / "great_expectations.yml").read_text() == config
    assert stale_suites(project) == []
    database = db.rsplit("/", 1)[1]
    for path in project.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".yml", ".html"):
            assert database not in path.read_text(errors="replace"), path


# ------------------------------------------------------------------------ raw faults
def test_duplicate_primary_keys_fail(db: str, options: GateOptions) -> None:
    _execute(db,
             "insert into raw_survey.responses select * from raw_survey.responses "
             "where response_id = (select min(response_id) from raw_survey.responses)",
             "insert into raw_crm.usage_snapshots select * from raw_crm.usage_snapshots "
             "where (account_id, snapshot_date) = (select account_id, min(snapshot_date) "
             "from raw_crm.usage_snapshots group by account_id order by account_id limit 1)")
    with psycopg.connect(db) as conn:
        duplicated = one_row(conn.execute("select min(response_id) from raw_survey.responses"))[0]
    message, report = _raw_fails(db, options, ("crm", "survey"))
    assert _failed(report) == {
        ("raw_survey.responses", "expect_column_values_to_be_unique", "response_id"),
        ("raw_crm.usage_snapshots", "expect_compound_columns_to_be_unique", ""),
    }
    unique = _one_failure(report, "raw_survey.responses", "expect_column_values_to_be_unique")
    assert unique.startswith("suite raw_survey.responses: "
                             "expect_column_values_to_be_unique(response_id) failed on "
                             "raw_survey.responses (batch 2026-03-31): 2 of ")
    assert f"e.g. {duplicated}" in unique
    compound = _one_failure(report, "raw_crm.usage_snapshots",
                            "expect_compound_columns_to_be_unique")
    assert "column_list=[account_id, snapshot_date]" in compound and "2 of " in compound
    assert unique in message and compound in message


def test_null_keys_fail(db: str, options: GateOptions) -> None:
    _execute(db, "update raw_survey.responses set response_id = null "
                 "where response_id = (select max(response_id) from raw_survey.responses)")
    message, report = _raw_fails(db, options, ("survey",))
    assert _failed(report) == {
        ("raw_survey.responses", "expect_column_values_to_not_be_null", "response_id")}
    assert ("suite raw_survey.responses: expect_column_values_to_not_be_null(response_id) "
            "failed on raw_survey.responses (batch 2026-03-31): 1 of ") in message


def test_negative_amounts_fail_but_credits_do_not(db: str, options: GateOptions) -> None:
    _execute(db,
             "update raw_billing.invoices set amount_due = -500 where invoice_id in "
             "(select invoice_id from raw_billing.invoices order by invoice_id limit 3)",
             # A proration credit line and a credited invoice total are valid negatives.
             "update raw_billing.invoice_lines set amount = -1200 where line_id = "
             "(select min(line_id) from raw_billing.invoice_lines)",
             "update raw_billing.invoices set total = -1200 where invoice_id = "
             "(select max(invoice_id) from raw_billing.invoices)")
    message, report = _raw_fails(db, options, ("billing",))
    assert _failed(report) == {
        ("raw_billing.invoices", "expect_column_values_to_be_between", "amount_due")}
    assert ("suite raw_billing.invoices: expect_column_values_to_be_between(amount_due, "
            "min_value=0) failed on raw_billing.invoices (batch 2026-03-31): 3 of ") in message
    assert "rows unexpected, e.g. -500" in message


def test_unknown_status_value_fails(db: str, options: GateOptions) -> None:
    _execute(db, "update raw_billing.subscriptions set status = 'frozen' where "
                 "subscription_id = (select min(subscription_id) from raw_billing.subscriptions)")
    message, report = _raw_fails(db, options, ("billing",))
    assert _failed(report) == {
        ("raw_billing.subscriptions", "expect_column_values_to_be_in_set", "status")}
    line = _one_failure(report, "raw_billing.subscriptions", "expect_column_values_to_be_in_set")
    assert "failed on raw_billing.subscriptions (batch 2026-03-31): 1 of " in line
    assert line.endswith("e.g. frozen [accepted_values]") and line in message


def test_data_past_the_freshness_limit_fails(db: str, options: GateOptions) -> None:
    # Ten days on, nothing new has arrived: the newest change is the first load's.
    with psycopg.connect(db) as conn:
        newest = one_row(conn.execute("select max(updated_at) from raw_crm.activities"))[0]
    message, report = _raw_fails(db, options, ("crm", "billing"), END + timedelta(days=10))
    stale = {f.table for f in report.failures if f.check == "freshness"}
    assert {"raw_crm.activities", "raw_crm.tickets", "raw_billing.invoices",
            "raw_billing.charges", "raw_billing.customers"} <= stale
    # Only freshness fails: an empty batch has no bad keys or values.
    assert {f.check for f in report.failures} == {"freshness"}
    line = _one_failure(report, "raw_crm.activities", "expect_column_max_to_be_between")
    assert line.startswith("suite raw_crm.activities: expect_column_max_to_be_between("
                           "updated_at, min_value=2026-04-08T00:00:00+00:00) failed on "
                           "raw_crm.activities (batches 2026-03-08..2026-04-10): observed ")
    assert newest.isoformat() in line and "[freshness: " in line and line in message


def test_volume_drop_to_half_fails(db: str, options: GateOptions) -> None:
    # Three earlier nights of the same size as this one.
    _execute(db, "insert into raw_meta.load_audit select gen_random_uuid(), batch_id, "
                 "source, entity, logical_date - d, source_file, rows_in, rows_loaded, "
                 "rows_quarantined, rows_replaced, path, started_at - d * interval '1 day', "
                 "finished_at - d * interval '1 day', duration_seconds, status, message "
                 "from raw_meta.load_audit, generate_series(1, 3) as d "
                 "where source = 'billing'")
    report = validate_raw(db, END, run_id="test__volume", sources=("billing",),
                          options=options)
    volume = [r for r in report.results if r.check == "volume"]
    assert {r.table for r in volume} >= {"raw_billing.customers", "raw_billing.invoices"}
    assert all(r.success for r in volume) and not report.notes

    _execute(db, "delete from raw_billing.customers where customer_id in (select customer_id "
                 "from raw_billing.customers order by customer_id limit 150)",
             "delete from raw_billing.invoices where invoice_id in (select invoice_id "
             "from raw_billing.invoices order by invoice_id limit "
             "(select count(*) / 2 from raw_billing.invoices))")
    message, report = _raw_fails(db, options, ("billing",))
    assert _failed(report) == {
        ("raw_billing.customers", "expect_table_row_count_to_be_between", "")}
    assert ("suite raw_billing.customers: expect_table_row_count_to_be_between(min_value=180, "
            "max_value=900) failed on raw_billing.customers (batch 2026-03-31): observed 150 "
            "[volume: expected 180..900 rows: 0.6x..3.0x the median 300 of 3 previous "
            "batches]") in message
    # Incremental batches follow the business's days: a small one is a warning.
    assert [w for w in report.warnings if "raw_billing.invoices" in w
            and "expect_table_row_count_to_be_between" in w]


def test_extra_column_is_only_a_warning(db: str, options: GateOptions) -> None:
    _execute(db, "alter table raw_crm.accounts add column loyalty_tier text",
             "update raw_crm.accounts set loyalty_tier = 'gold'")
    report = validate_raw(db, END, run_id="test__extra", sources=("crm",), options=options)
    assert report.success and not report.failures
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith(
        "suite raw_crm.accounts: expect_table_columns_to_match_set(")
    assert "failed on raw_crm.accounts" in report.warnings[0]
    assert "columns unexpected loyalty_tier" in report.warnings[0]


def test_missing_contract_column_fails(db: str, options: GateOptions) -> None:
    _execute(db, "alter table raw_crm.contacts drop column title cascade")
    message, report = _raw_fails(db, options, ("crm",))
    assert _failed(report) == {("raw_crm.contacts", "expect_table_columns_to_match_set", "")}
    assert "failed on raw_crm.contacts (batch 2026-03-31): columns missing title" in message


# ------------------------------------------------------------------------ build faults
def test_cause_weights_not_summing_to_one_fail(db: str, options: GateOptions) -> None:
    _execute(db, f"update {BUILD}.fct_defection_causes set weight = weight / 2 "
                 f"where defection_id = (select min(defection_id) "
                 f"from {BUILD}.fct_defection_causes)")
    with psycopg.connect(db) as conn:
        defection = one_row(conn.execute(
            f"select min(defection_id) from {BUILD}.fct_defection_causes"))[0]
    message, report = _build_fails(db, options)
    assert {f.suite for f in report.failures} == {"marts.fct_defection_causes"}
    line = _one_failure(report, "marts.fct_defection_causes", "unexpected_rows_expectation")
    assert line.startswith("suite marts.fct_defection_causes: unexpected_rows_expectation("
                           "The cause weights of each defection sum to 1.) failed on "
                           f"{BUILD}.fct_defection_causes (as of 2026-03-31): 1 unexpected "
                           f"row, e.g. {{defection_id: {defection}, weight_sum: 0.5")
    assert line in message


def test_kpi_rate_outside_zero_to_one_fails(db: str, options: GateOptions) -> None:
    _execute(db, f"update {BUILD}.kpi_retention_monthly set logo_churn_rate = 1.7 "
                 f"where month = '2025-06-01'")
    message, report = _build_fails(db, options)
    assert ("suite marts.kpi_retention_monthly: expect_column_values_to_be_between("
            "logo_churn_rate, min_value=0, max_value=1) failed on "
            f"{BUILD}.kpi_retention_monthly (as of 2026-03-31): 1 of ") in message
    assert "rows unexpected, e.g. 1.7 [range]" in message
    # The rate no longer equals its numerator over its denominator either.
    rates = [f for f in report.failures if f.expectation == "unexpected_rows_expectation"]
    assert len(rates) == 1 and "logo_churn_rate: 1.7" in rates[0].message
    assert len(report.failures) == 2


def test_missing_month_fails(db: str, options: GateOptions) -> None:
    _execute(db, f"delete from {BUILD}.kpi_retention_monthly where month = '2025-09-01'")
    message, report = _build_fails(db, options)
    missing = [f for f in report.failures if f.check == "missing_months"]
    assert len(missing) == 1
    assert ("unexpected_rows_expectation(No calendar month is missing between the first and "
            "the last month.) failed on ") in missing[0].message
    assert "e.g. {missing_month: 2025-09-01}" in message


def test_kpi_numerator_not_matching_movements_fails(db: str, options: GateOptions) -> None:
    _execute(db, f"update {BUILD}.kpi_retention_monthly set churned_mrr = churned_mrr + 100, "
                 f"gross_mrr_churn_rate_numerator = gross_mrr_churn_rate_numerator + 100 "
                 f"where month = '2025-11-01'")
    message, report = _build_fails(db, options)
    movements = [f for f in report.failures if "fct_mrr_movements" in f.message]
    assert len(movements) == 1 and "{month: 2025-11-01, " in movements[0].message
    assert "failed on analytics_build.kpi_retention_monthly" in message


def test_attributed_lost_mrr_not_matching_defections_fails(db: str,
                                                           options: GateOptions) -> None:
    _execute(db, f"update {BUILD}.mart_cause_attribution "
                 f"set lost_mrr_attributed = lost_mrr_attributed + 1000 "
                 f"where (defection_month, segment, cause_id) = (select defection_month, "
                 f"segment, cause_id from {BUILD}.mart_cause_attribution order by 1, 2, 3 "
                 f"limit 1)")
    message, report = _build_fails(db, options)
    assert {f.suite for f in report.failures} == {"marts.mart_cause_attribution"}
    line = _one_failure(report, "marts.mart_cause_attribution", "unexpected_rows_expectation")
    assert "attributed lost MRR equals the lost MRR of the month's defections" in line
    assert "lost_mrr_attributed: " in line and line in message


def test_missing_mart_fails_readably(db: str, options: GateOptions) -> None:
    _execute(db, f"drop table {BUILD}.mart_accounts_at_risk")
    message, report = _build_fails(db, options)
    assert [(f.suite, f.check) for f in report.failures] == [
        ("marts.mart_accounts_at_risk", "error")]
    assert (f"suite marts.mart_accounts_at_risk: could not run on "
            f"{BUILD}.mart_accounts_at_risk (as of 2026-03-31): ") in message
    assert "does not exist" in message


def test_dbt_unit_tests_pass(template: str) -> None:
    """The nightly builds leave dbt's unit tests out (NIGHTLY_FLAGS); they run here."""
    result = run_dbt(["test", "--select", "test_type:unit"], template, schema=BUILD,
                     as_of=END)
    statuses = [str(r.status) for r in result.results]
    assert len(statuses) >= 10
    assert set(statuses) == {"pass"}
