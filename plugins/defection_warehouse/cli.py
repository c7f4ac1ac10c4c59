"""Command line: `dw <command>`, or `python -m defection_warehouse <command>` (the same
commands; the Makefile calls the second). Built on Typer: `dw --help` lists the commands,
`dw <command> --help` explains one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from defection_warehouse import db
from defection_warehouse.airflow_services import (
    AirflowError,
    AirflowServices,
    airflow_executable,
    logical_date_for,
    migrate_metadata_db,
)
from defection_warehouse.config import PROJECT_ROOT, Settings
from defection_warehouse.dag_progress import run_quietly
from defection_warehouse.db import with_database

DAG_ID = "defection_nightly"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def warehouse_url(settings: Settings) -> str:
    """WAREHOUSE_URL or the embedded PostgreSQL (see db.warehouse_url), progress by `say`."""
    return db.warehouse_url(settings, progress=say)


def crm_url(settings: Settings, warehouse: str) -> str:
    if settings.crm_url:
        return settings.crm_url
    from defection_warehouse.embedded import ensure_database

    ensure_database(with_database(warehouse, "postgres"), "defection_crm")
    return with_database(warehouse, "defection_crm")


def ensure_sample(settings: Settings, crm: str, *, fresh: bool = False) -> Path:
    from defection_warehouse.sample import SampleParams, fingerprint, generate

    params = SampleParams(customers=settings.sample_customers, months=settings.sample_months,
                          seed=settings.sample_seed, end_date=settings.sample_end_date,
                          difficulty=settings.sample_difficulty)
    out = settings.sample_dir
    stamp = out / "sample.json"
    wanted = {"params": _params_dict(params), "crm_url": db.redact(crm),
              "fingerprint": fingerprint(params)}
    if not fresh and stamp.exists():
        done = json.loads(stamp.read_text())
        if all(done.get(k) == v for k, v in wanted.items()):
            say(f"sample already generated in {out} ({params.customers} customers, "
                f"{params.months} months); reusing it")
            return out
    if out.exists():
        shutil.rmtree(out)
    landing = Path(settings.landing_url)
    if landing.is_relative_to(settings.data_dir) and landing.exists():
        say(f"removing landing batches of the previous sample in {landing}")
        shutil.rmtree(landing)
    say(f"generating the sample business: {params.customers} customers over "
        f"{params.months} months ending {params.end_date} (seed {params.seed}, "
        f"{params.difficulty})")
    summary = generate(params, out, crm, progress=lambda m: say("  " + m))
    summary.update(wanted)
    stamp.write_text(json.dumps(summary, indent=2, default=str))
    return out


def _params_dict(params: object) -> dict[str, str]:
    return {k: str(v) for k, v in vars(params).items()}


@contextmanager
def billing_api(settings: Settings) -> Iterator[tuple[str, str]]:
    """The configured billing API, or the sample's local server for the demo."""
    if settings.billing_api_url:
        if not settings.billing_api_key:
            raise SystemExit("BILLING_API_URL is set but BILLING_API_KEY is not")
        yield settings.billing_api_url, settings.billing_api_key
        return
    from defection_warehouse.sample.billing_server import BillingServer

    key = settings.billing_api_key or "sk_test_" + secrets.token_hex(12)
    with BillingServer(settings.sample_dir / "billing.sqlite", key) as server:
        say(f"serving the sample billing API on {server.url}")
        yield server.url, key


def airflow_env(settings: Settings, warehouse: str, crm: str | None, billing_url: str,
                billing_key: str) -> dict[str, str]:
    home = settings.data_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # Cosmos's cache (dbt's saved parse state, rendered profiles) beside this home
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
        "DW_TASK_RETRIES": os.environ.get("DW_TASK_RETRIES", "0"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_WAREHOUSE": warehouse.replace("postgresql://", "postgres://", 1),
        "AIRFLOW_CONN_BILLING_API": json.dumps(
            {"conn_type": "http", "host": billing_url, "password": billing_key}),
        "LANDING_URL": settings.landing_url,
        "SURVEY_INBOX": settings.survey_inbox,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "plugins"),
                                                    os.environ.get("PYTHONPATH")])),
    })
    if crm:
        env["AIRFLOW_CONN_CRM_DB"] = crm.replace("postgresql://", "postgres://", 1)
    return env


def ensure_airflow_db(env: dict[str, str]) -> None:
    stamp = Path(env["AIRFLOW_HOME"]) / ".migrated"
    if stamp.exists():
        return
    say("initialising the Airflow metadata database (first run only)")
    migrate_metadata_db(env)
    stamp.touch()


def dbt_parse(warehouse: str) -> None:
    """The manifest the DAG renders its dbt tasks from (parse only: fast, no queries).

    dbt writes it in a folder of its own, and it is moved into place in one step: two
    `dw run`s at the same time (a backfill beside a rerun) would otherwise write the
    shared target/manifest.json together while the other's DAG reads it. Without the
    previous parse state dbt parses everything again, about 0.3 s more here."""
    from defection_warehouse.transform.cosmos_config import MANIFEST
    from defection_warehouse.transform.dbt_runner import run_dbt

    say("parsing the dbt project (manifest for the DAG's dbt tasks)")
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parse-", dir=MANIFEST.parent) as target:
        run_dbt(["parse", "--quiet", "--target-path", target], warehouse)
        os.replace(Path(target) / "manifest.json", MANIFEST)


def run_days(days: list[date], settings: Settings, warehouse: str, crm: str | None, *,
             reextract: bool = False, full_refresh: bool = False) -> None:
    # The DAG's params, passed as the run's conf (Airflow lets conf override params).
    conf = json.dumps({"reextract": reextract, "full_refresh": full_refresh})
    dbt_parse(warehouse)
    with billing_api(settings) as (url, key):
        env = airflow_env(settings, warehouse, crm, url, key)
        ensure_airflow_db(env)
        for day in days:
            # The run triggered at D+1 00:00 processes day D (data interval [D, D+1)).
            run_at = logical_date_for(day).date().isoformat()
            say(f"running {DAG_ID} for {day} (airflow dags test {DAG_ID} {run_at} "
                f"--conf '{conf}')")
            started = time.monotonic()
            log_file = airflow_log(settings, day)
            code = run_quietly([airflow_executable(), "dags", "test", DAG_ID, run_at,
                                "--conf", conf], env, DAG_ID, log_file, print)
            if code != 0:
                raise SystemExit(f"airflow dags test {DAG_ID} {run_at} failed (exit {code}); "
                                 f"Airflow's log: {log_file}")
            say(f"{DAG_ID} {day} finished in {time.monotonic() - started:.0f}s "
                f"(Airflow's log: {log_file})")


def airflow_log(settings: Settings, day: date) -> Path:
    """Where a run's Airflow output goes: DW_DATA_DIR/logs/<dag>_<day>.log."""
    return settings.data_dir / "logs" / f"{DAG_ID}_{day.isoformat()}.log"


@contextmanager
def local_airflow(settings: Settings, *, executor: str, workers: int, port: int,
                  broker_url: str, schedule: bool = False,
                  ) -> Iterator[tuple[AirflowServices, str]]:
    """Airflow's components on this machine (airflow_services.py) against the configured
    warehouse, their metadata database beside it; the sample's billing API is served
    meanwhile when no BILLING_API_URL is set. Yields the services and the warehouse URL."""
    from defection_warehouse.airflow_services import (
        AirflowServices,
        ServicesConfig,
        metadata_url,
    )

    wh = warehouse_url(settings)
    crm = crm_url(settings, wh)
    if not settings.billing_api_url:
        ensure_sample(settings, crm)
    dbt_parse(wh)
    flavour = "celery" if executor == "CeleryExecutor" else "local"
    config = ServicesConfig(home=settings.data_dir / f"airflow-{flavour}",
                            metadata_url=metadata_url(wh, flavour), port=port,
                            executor=executor, workers=workers, broker_url=broker_url,
                            schedule=schedule)
    with billing_api(settings) as (url, key):
        env = airflow_env(settings, wh, crm if "crm" in settings.sources else None, url, key)
        with AirflowServices(env, config, progress=say) as services:
            yield services, wh


def data_docs_index() -> Path:
    from defection_warehouse.config import DATA_DOCS_ENV, EXPECTATIONS_DIR

    site = os.environ.get(DATA_DOCS_ENV) or EXPECTATIONS_DIR / "gx" / "uncommitted" / \
        "data_docs" / "local_site"
    return Path(site) / "index.html"


def print_summary(warehouse: str, day: date) -> None:
    from defection_warehouse import pipeline

    print()
    print(pipeline.format_raw_summary(pipeline.raw_summary(warehouse, day), day))
    print()
    print(pipeline.kpi_summary(warehouse))
    print()


APP_HELP = """\
The Defection Warehouse's commands: the demo, nightly runs and backfills, the sample
business, dbt, roles and checks.

Settings come from environment variables, and from `.env` in the project root for those
the shell does not set (see README.md and .env.example). WAREHOUSE_URL names the
warehouse; when it is unset the commands start an embedded PostgreSQL.
"""

app = typer.Typer(
    help=APP_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    # plain tracebacks: rich ones can print local variables such as connection URLs
    pretty_exceptions_enable=False,
)


@app.callback()
def _load_dotenv() -> None:
    from dotenv import load_dotenv

    load_dotenv(PROJECT_ROOT / ".env", override=False)  # the shell's values win


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a YYYY-MM-DD date") from None


DIFFICULTY_HELP = ("the sample's noise: standard, or hard (the noise of a real business); "
                   "default SAMPLE_DIFFICULTY, else standard")


def _with_difficulty(settings: Settings, difficulty: str | None) -> Settings:
    if difficulty is None:
        return settings
    if difficulty not in ("standard", "hard"):
        raise typer.BadParameter(f"difficulty must be standard or hard, got {difficulty!r}")
    return settings.model_copy(update={"sample_difficulty": difficulty})


@app.command("demo")
def cmd_demo(
    fresh: Annotated[bool, typer.Option("--fresh", help="regenerate the sample")] = False,
    difficulty: Annotated[str | None, typer.Option("--difficulty", help=DIFFICULTY_HELP)] = None,
) -> None:
    """Run the whole demo on the sample business.

    Starts the warehouse (embedded unless WAREHOUSE_URL is set), generates the sample
    (or reuses it when its settings have not changed), serves its billing API, runs
    `airflow dags test defection_nightly` for the sample's last day (SAMPLE_END_DATE)
    and prints what was loaded, the latest KPIs and where the leadership report is. A
    sample of another difficulty than the one generated is generated anew.
    """
    settings = _with_difficulty(Settings.from_env(), difficulty)
    started = time.monotonic()
    wh = warehouse_url(settings)
    crm = crm_url(settings, wh)
    ensure_sample(settings, crm, fresh=fresh)
    day = settings.sample_end_date
    run_days([day], settings, wh, crm if "crm" in settings.sources else None)
    print_summary(wh, day)
    report = settings.data_dir / "reports" / day.isoformat() / "report.html"
    if not report.exists():  # a DAG that ran without its report task
        from defection_warehouse.report.build import build

        report = build(wh, settings.data_dir, settings.publish_schema).report
    say(f"leadership report: {report} (owner digests in {report.parent / 'digests'})")
    say(f"Great Expectations Data Docs: {data_docs_index()}")
    say(f"Airflow's full log: {airflow_log(settings, day)}")
    say(f"demo finished in {time.monotonic() - started:.0f}s; the warehouse is at "
        f"{db.redact(wh)}")


@app.command("run")
def cmd_run(
    start: Annotated[date, typer.Argument(parser=_iso_date, metavar="START",
                                          help="first logical date, YYYY-MM-DD")],
    end: Annotated[date | None, typer.Option(
        "--end", parser=_iso_date, metavar="END",
        help="last logical date (inclusive), YYYY-MM-DD; default: START")] = None,
    reextract: Annotated[bool, typer.Option(
        "--reextract",
        help="pull each day's sources again instead of reusing its committed landing "
             "batch (the committed batch is kept if the pull fails)")] = False,
    full_refresh: Annotated[bool, typer.Option(
        "--full-refresh",
        help="rebuild every dbt model from scratch instead of incrementally")] = False,
) -> None:
    """Run the nightly DAG for a day or a range of days.

    A backfill against the configured sources (DW_SOURCES): one `airflow dags test
    defection_nightly` run per logical date, in order; the run for day D processes the
    data interval from D to D+1. Prints what was loaded on the last day and the latest
    KPIs.
    """
    settings = Settings.from_env()
    end = end or start
    if end < start:
        raise SystemExit(f"--end {end} is before the start date {start}")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    wh = warehouse_url(settings)
    # a business without a CRM needs no CRM database
    crm = crm_url(settings, wh) if "crm" in settings.sources else None
    from defection_warehouse.pipeline import sources_line

    say(sources_line(settings.sources))
    run_days(days, settings, wh, crm, reextract=reextract, full_refresh=full_refresh)
    print_summary(wh, days[-1])


@app.command("airflow")
def cmd_airflow(
    port: Annotated[int, typer.Option("--port", help="the api-server's (UI's) port")] = 8080,
    schedule: Annotated[bool, typer.Option(
        "--schedule/--no-schedule",
        help="run the DAG nightly on its schedule once unpaused, as a deployment does; "
             "off by default: only the nights you trigger or backfill run")] = False,
) -> None:
    """Start Airflow on this machine: the UI, scheduler, dag-processor and triggerer.

    Runs Airflow's components as local processes (LocalExecutor) against the warehouse
    (embedded unless WAREHOUSE_URL is set; Airflow's metadata database is
    `<warehouse database>_airflow_local` on the same server) and the sample's sources,
    generated first if need be. Prints the URL and the login; from the UI trigger
    `defection_nightly` (Trigger, with a logical date of D+1 for day D) or backfill a
    range of nights. The schedule is off unless
    --schedule: the sample's nights are in the past. Stop with Ctrl-C. Logs are in
    DW_DATA_DIR/airflow-local/services/ and /logs/.
    """
    settings = Settings.from_env()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the components too
    with local_airflow(settings, executor="LocalExecutor", workers=0, port=port,
                       broker_url="", schedule=schedule) as (services, _):
        print(f"\nAirflow is ready at {services.config.url} (user admin, password "
              f"{services.password})\n"
              f"  the DAG: {services.config.url}/dags/{DAG_ID}\n"
              f"  trigger the night of day D: Trigger, logical date D+1 00:00 UTC\n"
              f"  backfill: the DAG's Trigger menu, Backfill, a date range\n"
              "Stop with Ctrl-C.\n", flush=True)
        try:
            while True:
                services.check_running()
                time.sleep(5)
        except KeyboardInterrupt:
            say("stopping Airflow")


@app.command("celery-run")
def cmd_celery_run(
    day: Annotated[date | None, typer.Argument(
        parser=_iso_date, metavar="DAY",
        help="the night's day, YYYY-MM-DD (default: the sample's last day)")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1,
                                         help="Celery workers, each a process")] = 2,
    broker: Annotated[str, typer.Option(
        "--broker", envvar="CELERY_BROKER_URL",
        help="Celery's broker (Redis)")] = "redis://127.0.0.1:6379/0",
    port: Annotated[int, typer.Option("--port", help="the api-server's port")] = 8080,
) -> None:
    """Run one night of the nightly DAG on Airflow's CeleryExecutor.

    Starts the api-server, scheduler, dag-processor, triggerer and `--workers` Celery
    workers as separate processes (the broker is the Redis at `--broker`; the metadata
    database is `<warehouse database>_airflow_celery` on the warehouse's server),
    triggers the night of DAY (replacing an earlier run of that night)
    through Airflow's REST API, waits for it and prints which worker ran how many tasks,
    then the night's summary. Stops the components when done.
    """
    from defection_warehouse.airflow_services import broker_problem, tasks_by_host

    settings = Settings.from_env()
    day = day or settings.sample_end_date
    problem = broker_problem(broker)
    if problem:
        raise SystemExit(f"{problem}: start Redis, or pass --broker (CELERY_BROKER_URL)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with local_airflow(settings, executor="CeleryExecutor", workers=workers, port=port,
                       broker_url=broker) as (services, wh):
        client = services.client()
        client.wait_for_dag(DAG_ID)
        run_id = client.trigger(DAG_ID, day)
        say(f"triggered {DAG_ID} for {day} through the REST API: run {run_id}")
        state = client.wait_for_runs(DAG_ID, [run_id], timeout=3600, progress=say)[run_id]
        hosts = tasks_by_host(client.task_instances(DAG_ID, run_id))
    for host, count in hosts.items():
        say(f"  {host}: {count} tasks")
    if state != "success":
        raise SystemExit(f"{DAG_ID} {day} ended {state}; task logs in "
                         f"{services.config.home / 'logs'}")
    print_summary(wh, day)


@app.command("sample")
def cmd_sample(
    difficulty: Annotated[str | None, typer.Option("--difficulty", help=DIFFICULTY_HELP)] = None,
) -> None:
    """(Re)generate the sample business.

    Only the sample: its CRM database, billing store and survey exports under
    DW_DATA_DIR/sample, sized by SAMPLE_CUSTOMERS, SAMPLE_MONTHS, SAMPLE_SEED and
    SAMPLE_END_DATE, with the noise SAMPLE_DIFFICULTY (or --difficulty) names. Nothing is
    loaded into the warehouse.
    """
    settings = _with_difficulty(Settings.from_env(), difficulty)
    wh = warehouse_url(settings)
    ensure_sample(settings, crm_url(settings, wh), fresh=True)


@app.command("attribution-report")
def cmd_attribution_report() -> None:
    """Compare attribution with the sample's planted truth.

    Compares the causes the marts attribute defections to with the causes the sample
    generator planted, and writes bench/attribution.json (bench/attribution_hard.json for
    the hard sample). Needs `make demo` first. Ends with the headline figures of every
    sample measured so far side by side: run it once after a demo of each difficulty
    (each with its own DW_DATA_DIR and warehouse) to compare them.
    """
    from defection_warehouse.sample import attribution_report

    settings = Settings.from_env()
    truth = settings.sample_dir / "planted_truth.csv"
    if not truth.exists():
        raise SystemExit(f"{truth} not found: run `make demo` first (it generates the "
                         "sample and builds the marts)")
    stamp = settings.sample_dir / "sample.json"
    params = json.loads(stamp.read_text()).get("params", {}) if stamp.exists() else {}
    difficulty = params.get("difficulty", "standard")
    bench = PROJECT_ROOT / "bench"
    out = bench / ("attribution.json" if difficulty == "standard"
                   else f"attribution_{difficulty}.json")
    _exit(attribution_report.main([
        "--warehouse-url", warehouse_url(settings), "--truth", str(truth),
        "--out", str(out)]))
    results = {}
    for name, path in (("standard", bench / "attribution.json"),
                       ("hard", bench / "attribution_hard.json")):
        if path.exists():
            results[name] = json.loads(path.read_text())
    print()
    print(f"this sample: {difficulty}; the figures of each sample measured (bench/):")
    print(attribution_report.format_comparison(results))


@app.command("report")
def cmd_report(
    as_of: Annotated[date | None, typer.Option(
        "--as-of", parser=_iso_date, metavar="DATE",
        help="the as-of date the published marts must have (default: theirs)")] = None,
) -> None:
    """Build the leadership report and the owner digests.

    Reads the published schema (DW_PUBLISH_SCHEMA, `analytics`) only and writes
    DW_DATA_DIR/reports/<as-of date>/report.html (one self-contained file that opens with
    no network) and a digest per owning function in digests/ beside it. Prints the
    report's path.
    """
    from defection_warehouse.report.build import build
    from defection_warehouse.report.data import ReportDataError

    settings = Settings.from_env()
    try:
        built = build(warehouse_url(settings), settings.data_dir, settings.publish_schema,
                      as_of)
    except ReportDataError as exc:
        raise SystemExit(str(exc)) from None
    print(built.report)


@app.command("setup-roles")
def cmd_setup_roles() -> None:
    """Create the loader, transformer and reporter roles (least privilege).

    Creates the group roles dw_loader, dw_transformer and dw_reporter, the schemas and
    the grants in the WAREHOUSE_URL database; run it as a database admin. For other
    schema names use `python -m defection_warehouse.publish.roles setup --help`.
    """
    from defection_warehouse.publish import roles

    _exit(roles.main(["setup"]))


@app.command("restore-previous")
def cmd_restore_previous() -> None:
    """Publish the previous generation again (undo the last publish).

    Until the next dbt build, the build schema (DW_BUILD_SCHEMA) holds the marts the last
    publish replaced. This swaps it back with the published schema (DW_PUBLISH_SCHEMA) in
    one transaction, removes the undone run from kpi_history and records the restore in
    dw_meta.publish_log. Refused, changing nothing, once a dbt build has run since that
    publish. Pause the nightly DAG first, so that it does not publish the same build again.
    """
    from defection_warehouse.publish.swap import PublishError, restore_previous

    settings = Settings.from_env()
    try:
        result = restore_previous(warehouse_url(settings), build_schema=settings.build_schema,
                                  publish_schema=settings.publish_schema)
    except PublishError as exc:
        raise SystemExit(str(exc)) from None
    say(f"restored run {result.run_id} (as-of {result.as_of_date}) to "
        f"{result.publish_schema}: {len(result.tables)} tables, "
        f"{sum(result.row_counts.values()):,} rows; the undone build is in "
        f"{result.build_schema} until the next dbt build")


@app.command("lint-sql")
def cmd_lint_sql() -> None:
    """SQLFluff on the dbt models.

    Uses the dbt templater, which compiles the project, so it needs a warehouse
    (WAREHOUSE_URL, else the embedded PostgreSQL) for the profile.
    """
    from defection_warehouse.transform.dbt_runner import DBT_DIR, profile_env

    env = {**os.environ, **profile_env(warehouse_url(Settings.from_env()))}
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    _exit(subprocess.run([str(sqlfluff), "lint", str(DBT_DIR / "models"), "--processes", "2"],
                         env=env, cwd=PROJECT_ROOT).returncode)


@app.command(
    "dbt",
    # everything after `dbt` goes to dbt as written, options included: unknown options
    # are kept as arguments, and the first argument ends this command's own options, so
    # `dw dbt build --help` is dbt's help and `dw dbt --help` this one
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                      "allow_interspersed_args": False},
)
def cmd_dbt(
    dbt_args: Annotated[list[str] | None, typer.Argument(
        metavar="DBT_ARGS",
        help="the dbt command and its options, passed on unchanged",
        show_default=False)] = None,
) -> None:
    """Run dbt against the configured warehouse, e.g. `dbt build --select marts`.

    The profile comes from WAREHOUSE_URL (else the embedded PostgreSQL); the project is
    dbt_project/. Examples: `dw dbt build --select marts`, `dw dbt build --full-refresh`,
    `dw dbt parse --quiet`.
    """
    from defection_warehouse.transform.dbt_runner import DbtError, run_dbt

    settings = Settings.from_env()
    try:
        run_dbt(dbt_args or [], warehouse_url(settings))
    except DbtError as exc:
        print(exc, file=sys.stderr)
        raise typer.Exit(1) from None


def main(argv: list[str] | None = None) -> None:
    """`dw` and `python -m defection_warehouse`: runs the command in `argv` (default: the
    process's arguments) and exits with its status."""
    try:
        app(args=argv)
    except AirflowError as exc:
        raise SystemExit(str(exc)) from None
