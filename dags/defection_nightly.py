"""
### defection_nightly

Every night: extract CRM, billing and survey data for the previous day into the landing
zone, load each source into its `raw_<source>` schema with COPY, validate the day's raw
batches (Great Expectations, blocking), build the dbt project, validate the built marts
(blocking), and only then publish them: one transaction swaps the build schema with the
published schema that BI tools read and appends the KPIs to `kpi_history`
(write-audit-publish).

* **dbt**: `dbt_plan` decides whether the night's build is a full refresh (asked for by
  the `full_refresh` param, or required because a load since the last build replaced a
  batch or brought an older day). In the `dbt` group (Cosmos, watcher mode)
  `dbt_producer_watcher` runs one `dbt build` of the whole project (seeds, staging,
  intermediate, the marts into the build schema, their data tests); every seed and model
  is a task `dbt.<name>.run` (or `.seed`) and its data tests a task `dbt.<name>.test`,
  each showing the status dbt reported for it. A model's failure is in its own task and
  in the producer's dbt log; a retry of a failed model's task runs dbt for that model
  alone. `dbt_record` records the successful build (`dw_meta.dbt_builds`).
* **After publish**: `report` logs the night's summary; `leadership_report` writes the
  HTML report and the owner digests from the published schema (under
  `DW_DATA_DIR/reports/<as-of date>/`) and `send_digests` posts each owner's digest to
  its connection `dw_digest_<owner>` (skipped without one). Neither can undo the publish.
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

import logging
import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, TriggerRule, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from defection_warehouse.config import Settings
from defection_warehouse.sources.contracts import SOURCES
from defection_warehouse.transform.cosmos_config import nightly_dbt_group

log = logging.getLogger(__name__)


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


def _warehouse_url() -> str:
    """The `warehouse` connection's URL (the dbt stage needs no other endpoint)."""
    from airflow.sdk import Connection

    return Connection.get("warehouse").get_uri()


def _endpoints(sources=()):
    """Resolve connections at run time (never at import); the CRM's only when it is one
    of the connected `sources`."""
    from airflow.sdk import Connection

    from defection_warehouse.pipeline import Endpoints
    from defection_warehouse.sources.billing import api_settings_from_connection

    url, key = api_settings_from_connection(Connection.get("billing_api"))
    return Endpoints(
        warehouse_url=_warehouse_url(),
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
        log.info(summary)
        return summary

    @task
    def dbt_plan(data_interval_start=None, params=None) -> dict:
        """Decide the night's dbt build before it starts: a full refresh when the
        `full_refresh` param asks for one, or when the loads since the previous build
        replaced a batch or brought an older day (dbt_builds.py). Creates the build schema
        if it is missing; dbt replaces its marts, and publish drops anything that is not a
        mart."""
        from defection_warehouse.pipeline import ensure_build_schema
        from defection_warehouse.transform.dbt_runner import plan_nightly_build

        url = _warehouse_url()
        ensure_build_schema(url, Settings.from_env())
        # logs whether the build is a full refresh, and why
        return plan_nightly_build(url, full_refresh=bool(params["full_refresh"])).as_dict()

    @task
    def dbt_record(plan: dict, data_interval_start=None) -> None:
        """Record the successful build in dw_meta.dbt_builds, for the next night's rule."""
        from defection_warehouse.transform.dbt_builds import BuildPlan
        from defection_warehouse.transform.dbt_runner import record_nightly_build

        record_nightly_build(_warehouse_url(), BuildPlan.from_dict(plan),
                             as_of=_day(data_interval_start))
        log.info("dbt build of %s recorded in dw_meta.dbt_builds", _day(data_interval_start))

    @task
    def validate_build(data_interval_start=None, run_id=None) -> str:
        """Blocking gate: the marts in the build schema; publish runs only after it."""
        from defection_warehouse import pipeline

        summary = pipeline.validate_build(_day(data_interval_start), _endpoints(),
                                          Settings.from_env(), run_id=run_id)
        log.info(summary)
        return summary

    @task
    def publish(data_interval_start=None, run_id=None) -> str:
        from defection_warehouse import pipeline

        summary = pipeline.publish(_day(data_interval_start), _endpoints(),
                                   Settings.from_env(), run_id=run_id)
        log.info(summary)
        return summary

    @task
    def report(data_interval_start=None, params=None) -> dict:
        from defection_warehouse import pipeline

        day = _day(data_interval_start)
        sources = _sources(params)
        url = _endpoints(sources).warehouse_url
        log.info(pipeline.sources_line(sources))
        rows = pipeline.raw_summary(url, day)
        log.info(pipeline.format_raw_summary(rows, day))
        log.info(pipeline.kpi_summary(url))
        return {table: batch_rows for table, batch_rows, _ in rows}

    @task
    def leadership_report(data_interval_start=None) -> str:
        """The leadership report and the owner digests of the night just published, read
        from the published schema only. Publish has committed: a failure here leaves it."""
        from defection_warehouse.report.build import build

        settings = Settings.from_env()
        built = build(_endpoints().warehouse_url, settings.data_dir, settings.publish_schema,
                      as_of=_day(data_interval_start))
        log.info("leadership report: %s", built.report)
        return str(built.digests)

    @task
    def send_digests(digests_folder: str) -> dict:
        """Post each owner's digest to its webhook (connection dw_digest_<owner>); an owner
        without one is skipped and a failed post is logged, never raised."""
        from pathlib import Path

        from defection_warehouse.report.digests import send_digests as send

        result = send(Path(digests_folder))
        return {"sent": list(result.sent), "skipped": list(result.skipped),
                "failed": list(result.failed)}

    loads = [load.override(task_id=f"load_{s}")(
        extract.override(task_id=f"extract_{s}")(s)) for s in SOURCES]
    plan = dbt_plan()
    models = nightly_dbt_group(group_id="dbt", plan_task_id="dbt_plan",
                               default_args=default_args)
    published = publish()
    loads >> validate_raw() >> plan >> models >> dbt_record(plan) >> validate_build() >> \
        published >> report()
    digests = leadership_report()
    published >> digests
    send_digests(digests)


defection_nightly()
