"""
### defection_nightly

Every night: extract CRM, billing and survey data for the previous day into the landing
zone, load each source into its `raw_<source>` schema with COPY, validate the day's raw
batches (Great Expectations, blocking), build the dbt models (`dbt_base`: seeds, staging
and intermediate; then one task per mart in the `dbt` group, built into the build schema),
validate the built marts (blocking), and only then publish them: one transaction swaps
the build schema with the published schema that BI tools read and appends the KPIs to
`kpi_history` (write-audit-publish).

* **Schedule**: daily at 00:00 UTC; the run at D+1 00:00 processes day D, its data
  interval [D, D+1). Manual runs and `airflow dags test defection_nightly <D+1>` alike.
* **Backfill / rerun**: every task is keyed on the data interval and idempotent. A rerun
  reuses committed landing files (set the `reextract` param to pull them again) and
  replaces that day's raw batch in one transaction.
* **Sources**: the connected sources come from the `sources` param, else the Airflow
  Variable `dw_sources`, else `DW_SOURCES` (comma list of crm, billing, survey; all by
  default; billing is required). A source that is not connected has its extract and load
  skipped, is not gated, and keeps empty raw tables.
* **Connections**: `warehouse` (Postgres), `billing_api` (HTTP: host = API base URL,
  password = API key), `crm_db` (Postgres) when the CRM is connected, optional
  `dw_alerts` (HTTP webhook for failure alerts).
* **When it fails**: the failing task's log (and the alert) names the problem: file, line
  and field for malformed rows (`raw_meta.quarantine`), or suite, table, expectation and
  observed value for a failed gate (`dw_meta.gate_results`, Data Docs). Nothing is
  published: the published schema keeps the last good night.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, TriggerRule, dag, task
from airflow.timetables.trigger import CronTriggerTimetable
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

from defection_warehouse.config import Settings
from defection_warehouse.sources.contracts import SOURCES
from defection_warehouse.transform.cosmos_config import (
    DBT_DIR,
    WarehouseProfileMapping,
    manifest_path,
)
from defection_warehouse.transform.dbt_runner import (
    AS_OF_ENV,
    NIGHTLY_FLAGS,
    PROFILE_NAME,
    TARGET_NAME,
)


def _notify_failure(context) -> None:
    from defection_warehouse.notify import on_failure_callback

    on_failure_callback(context)


default_args = {
    "owner": "data-engineering",
    # DW_TASK_RETRIES=0 makes local runs (the demo) fail at once instead of waiting.
    "retries": int(os.environ.get("DW_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": _notify_failure,
}


def _sources(params) -> tuple[str, ...]:
    """The connected sources, resolved at run time: the run's `sources` param, else the
    Airflow Variable `dw_sources`, else DW_SOURCES (all three when none is set)."""
    from airflow.sdk import Variable

    from defection_warehouse.config import parse_sources

    if params and params.get("sources"):
        return parse_sources(params["sources"], origin="the sources param")
    variable = Variable.get("dw_sources", default=None)
    if variable:
        return parse_sources(variable, origin="the Airflow Variable dw_sources")
    return Settings.from_env().sources


def _endpoints(sources=()):
    """Resolve connections at run time (never at import); the CRM's only when it is one
    of the connected `sources`."""
    from airflow.sdk import Connection

    from defection_warehouse.pipeline import Endpoints
    from defection_warehouse.sources.billing import api_settings_from_connection

    url, key = api_settings_from_connection(Connection.get("billing_api"))
    return Endpoints(
        warehouse_url=Connection.get("warehouse").get_uri(),
        crm_url=Connection.get("crm_db").get_uri() if "crm" in sources else None,
        billing_url=url,
        billing_api_key=key,
    )


def _day(data_interval_start):
    return data_interval_start.date()


@dag(
    dag_id="defection_nightly",
    # The run at D+1 00:00 UTC processes day D: data interval [D, D+1), also for manual
    # runs and `airflow dags test <D+1>`.
    schedule=CronTriggerTimetable("0 0 * * *", timezone="UTC", interval=timedelta(days=1)),
    start_date=pendulum.datetime(2024, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    params={
        "reextract": Param(False, type="boolean",
                           description="Pull the sources again even when the day's landing "
                                       "batch is already committed."),
        "full_refresh": Param(False, type="boolean",
                              description="Rebuild incremental dbt models from all history."),
        "sources": Param("", type="string",
                         description="Connected sources for this run, e.g. 'billing,crm' "
                                     "(empty: the Variable dw_sources, else DW_SOURCES)."),
    },
    tags=["defection-warehouse", "nightly", "extract-load", "quality-gate"],
    doc_md=__doc__,
)
def defection_nightly():
    @task(task_id="extract")
    def extract(source: str, data_interval_start=None, params=None) -> dict:
        """Extract one source; skipped (its load too) when the source is not connected."""
        from airflow.sdk.exceptions import AirflowSkipException

        from defection_warehouse import pipeline

        sources = _sources(params)
        if source not in sources:
            skipped = pipeline.skip_source(source, _endpoints(sources),
                                           Settings.from_env(), sources=sources)
            raise AirflowSkipException(skipped["reason"])
        return pipeline.extract(source, _day(data_interval_start), _endpoints(sources),
                                Settings.from_env(), force=bool(params["reextract"]),
                                progress=print)

    @task(task_id="load")
    def load(extracted: dict, data_interval_start=None, params=None) -> dict:
        from defection_warehouse import pipeline

        return pipeline.load(extracted["source"], _day(data_interval_start),
                             _endpoints(_sources(params)), Settings.from_env(),
                             progress=print)

    # none_failed: runs when the loads of the sources that are not connected were skipped
    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def validate_raw(data_interval_start=None, run_id=None, params=None) -> str:
        """Blocking gate: the day's raw batches of the connected sources."""
        from defection_warehouse import pipeline

        sources = _sources(params)
        summary = pipeline.validate_raw(_day(data_interval_start), _endpoints(sources),
                                        run_id=run_id, sources=sources)
        print(summary)
        return summary

    @task
    def dbt_base(data_interval_start=None, params=None) -> None:
        """Seeds, staging and intermediate models in one dbt build (dbt's log names any
        failing model); the marts that people read are tasks of their own. A night whose
        loads replaced a batch or brought an older day is built with --full-refresh
        (dbt_builds.py). The build schema is created if missing; dbt replaces its marts,
        and publish drops anything that is not a mart."""
        from defection_warehouse.pipeline import ensure_build_schema
        from defection_warehouse.transform.dbt_runner import nightly_build

        settings = Settings.from_env()
        url = _endpoints().warehouse_url
        ensure_build_schema(url, settings)
        # buildable: a test that also reads a mart runs with that mart
        nightly_build(url, select=["--select", "resource_type:seed", "staging", "intermediate",
                                   "--indirect-selection", "buildable"],
                      schema=settings.build_schema, as_of=data_interval_start.date(),
                      full_refresh=params["full_refresh"])

    @task
    def validate_build(data_interval_start=None, run_id=None) -> str:
        """Blocking gate: the marts in the build schema; publish runs only after it."""
        from defection_warehouse import pipeline

        summary = pipeline.validate_build(_day(data_interval_start), _endpoints(),
                                          Settings.from_env(), run_id=run_id)
        print(summary)
        return summary

    @task
    def publish(data_interval_start=None, run_id=None) -> str:
        from defection_warehouse import pipeline

        summary = pipeline.publish(_day(data_interval_start), _endpoints(),
                                   Settings.from_env(), run_id=run_id)
        print(summary)
        return summary

    @task
    def report(data_interval_start=None, params=None) -> dict:
        from defection_warehouse import pipeline

        day = _day(data_interval_start)
        sources = _sources(params)
        url = _endpoints(sources).warehouse_url
        print(pipeline.sources_line(sources))
        rows = pipeline.raw_summary(url, day)
        print(pipeline.format_raw_summary(rows, day))
        print(pipeline.kpi_summary(url))
        return {table: batch_rows for table, batch_rows, _ in rows}

    loads = [load.override(task_id=f"load_{s}")(
        extract.override(task_id=f"extract_{s}")(s)) for s in SOURCES]
    raw_gate = validate_raw()
    base = dbt_base()
    settings = Settings.from_env()
    models = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(dbt_project_path=DBT_DIR, manifest_path=manifest_path()),
        profile_config=ProfileConfig(
            profile_name=PROFILE_NAME,
            target_name=TARGET_NAME,
            profile_mapping=WarehouseProfileMapping(
                conn_id="warehouse",
                # threads as in run_dbt: a mart's data tests run side by side
                profile_args={"schema": settings.build_schema,
                              "threads": settings.dbt_threads}),
        ),
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL,
                                         invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=["path:models/marts"],
            test_behavior=TestBehavior.BUILD,
            emit_datasets=False,
        ),
        operator_args={"install_deps": False,
                       # a relationship test runs with the later of its two models
                       "dbt_cmd_flags": ["--indirect-selection", "buildable", *NIGHTLY_FLAGS],
                       "full_refresh": "{{ params.full_refresh }}",
                       # the as-of date as the runner passes it (see dbt_runner.run_dbt)
                       "env": {AS_OF_ENV: "{{ data_interval_start | ds }}"}},
        default_args=default_args,
    )
    loads >> raw_gate >> base >> models >> validate_build() >> publish() >> report()


defection_nightly()
