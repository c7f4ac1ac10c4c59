"""Command line: `python -m defection_warehouse <command>` (the Makefile calls these).

demo      start the warehouse (embedded unless WAREHOUSE_URL is set), generate the sample,
          serve its billing API, run `airflow dags test defection_nightly` for the sample's
          last day and print what was loaded
run       run the nightly DAG for one or more days (a backfill) against configured sources
sample    generate the sample business only
dbt       run dbt against the configured warehouse (profile from WAREHOUSE_URL)
attribution-report
          compare the attributed causes with the sample's planted truth
setup-roles
          create the loader, transformer and reporter roles with least privilege
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from defection_warehouse.config import PROJECT_ROOT, Settings
from defection_warehouse.db import with_database

DAG_ID = "defection_nightly"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def warehouse_url(settings: Settings) -> str:
    if settings.warehouse_url:
        import psycopg

        from defection_warehouse.embedded import ensure_database

        url = settings.warehouse_url
        try:
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.OperationalError as exc:
            if "does not exist" not in str(exc):
                raise SystemExit(f"cannot connect to WAREHOUSE_URL {_redact(url)}: {exc}") from exc
            database = urlsplit(url).path.lstrip("/")
            say(f"creating database {database} on the WAREHOUSE_URL server")
            ensure_database(with_database(url, "postgres"), database)
        return url
    from defection_warehouse import embedded

    url = embedded.start(settings)
    say(f"WAREHOUSE_URL is not set: using the embedded PostgreSQL at {url} "
        f"(data in {settings.data_dir / 'pgdata'})")
    return url


def crm_url(settings: Settings, warehouse: str) -> str:
    if settings.crm_url:
        return settings.crm_url
    from defection_warehouse.embedded import ensure_database

    ensure_database(with_database(warehouse, "postgres"), "defection_crm")
    return with_database(warehouse, "defection_crm")


def ensure_sample(settings: Settings, crm: str, *, fresh: bool = False) -> Path:
    from defection_warehouse.sample import SampleParams, fingerprint, generate

    params = SampleParams(customers=settings.sample_customers, months=settings.sample_months,
                          seed=settings.sample_seed, end_date=settings.sample_end_date)
    out = settings.sample_dir
    stamp = out / "sample.json"
    wanted = {"params": _params_dict(params), "crm_url": _redact(crm),
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
        f"{params.months} months ending {params.end_date} (seed {params.seed})")
    summary = generate(params, out, crm, progress=lambda m: say("  " + m))
    summary.update(wanted)
    stamp.write_text(json.dumps(summary, indent=2, default=str))
    return out


def _params_dict(params: object) -> dict[str, str]:
    return {k: str(v) for k, v in vars(params).items()}


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@contextmanager
def billing_api(settings: Settings) -> Iterator[tuple[str, str]]:
    """The configured billing API, or the sample's local server for the demo."""
    if settings.billing_api_url:
        if not settings.billing_api_key:
            raise SystemExit("BILLING_API_URL is set but BILLING_API_KEY is not")
        yield settings.billing_api_url, settings.billing_api_key
        return
    from defection_warehouse.billing_server import BillingServer

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


def airflow(args: list[str], env: dict[str, str], *, quiet: bool = False) -> None:
    exe = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(exe), *args], env=env, text=True,
                          stdout=subprocess.PIPE if quiet else None,
                          stderr=subprocess.STDOUT if quiet else None)
    if proc.returncode != 0:
        if quiet and proc.stdout:
            print(proc.stdout[-4000:])
        raise SystemExit(f"airflow {' '.join(args)} failed (exit {proc.returncode})")


def ensure_airflow_db(env: dict[str, str]) -> None:
    stamp = Path(env["AIRFLOW_HOME"]) / ".migrated"
    if stamp.exists():
        return
    say("initialising the Airflow metadata database (first run only)")
    airflow(["db", "migrate"], env, quiet=True)
    stamp.touch()


def dbt_parse(warehouse: str) -> None:
    """The manifest the DAG renders its dbt tasks from (parse only: fast, no queries)."""
    from defection_warehouse.dbt_runner import run_dbt

    say("parsing the dbt project (manifest for the DAG's dbt tasks)")
    run_dbt(["parse", "--quiet"], warehouse)


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
            run_at = (day + timedelta(days=1)).isoformat()
            say(f"running {DAG_ID} for {day} (airflow dags test {DAG_ID} {run_at} "
                f"--conf '{conf}')")
            started = time.monotonic()
            airflow(["dags", "test", DAG_ID, run_at, "--conf", conf], env)
            say(f"{DAG_ID} {day} finished in {time.monotonic() - started:.0f}s")


def cmd_demo(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    started = time.monotonic()
    wh = warehouse_url(settings)
    crm = crm_url(settings, wh)
    ensure_sample(settings, crm, fresh=args.fresh)
    day = settings.sample_end_date
    run_days([day], settings, wh, crm if "crm" in settings.sources else None)
    print_summary(wh, day)
    say(f"demo finished in {time.monotonic() - started:.0f}s; the warehouse is at "
        f"{_redact(wh)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    start = date.fromisoformat(args.start)
    end = date.fromisoformat(args.end) if args.end else start
    if end < start:
        raise SystemExit(f"--end {end} is before the start date {start}")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    wh = warehouse_url(settings)
    # a business without a CRM needs no CRM database
    crm = crm_url(settings, wh) if "crm" in settings.sources else None
    from defection_warehouse.pipeline import sources_line

    say(sources_line(settings.sources))
    run_days(days, settings, wh, crm, reextract=args.reextract,
             full_refresh=args.full_refresh)
    print_summary(wh, days[-1])
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    wh = warehouse_url(settings)
    ensure_sample(settings, crm_url(settings, wh), fresh=True)
    return 0


def cmd_dbt(args: argparse.Namespace) -> int:
    from defection_warehouse.dbt_runner import DbtError, run_dbt

    settings = Settings.from_env()
    try:
        run_dbt(args.dbt_args, warehouse_url(settings))
    except DbtError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_attribution_report(args: argparse.Namespace) -> int:
    from defection_warehouse import attribution_report

    settings = Settings.from_env()
    truth = settings.sample_dir / "planted_truth.csv"
    if not truth.exists():
        raise SystemExit(f"{truth} not found: run `make demo` first (it generates the "
                         "sample and builds the marts)")
    return attribution_report.main([
        "--warehouse-url", warehouse_url(settings), "--truth", str(truth),
        "--out", str(PROJECT_ROOT / "bench" / "attribution.json")])


def cmd_setup_roles(args: argparse.Namespace) -> int:
    from defection_warehouse import roles

    return roles.main(["setup"])


def cmd_lint_sql(args: argparse.Namespace) -> int:
    """SQLFluff with the dbt templater: it compiles the project, so it needs a profile."""
    from defection_warehouse.dbt_runner import DBT_DIR, profile_env

    env = {**os.environ, **profile_env(warehouse_url(Settings.from_env()))}
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    return subprocess.run([str(sqlfluff), "lint", str(DBT_DIR / "models"), "--processes", "2"],
                          env=env, cwd=PROJECT_ROOT).returncode


def print_summary(warehouse: str, day: date) -> None:
    from defection_warehouse import pipeline

    print()
    print(pipeline.format_raw_summary(pipeline.raw_summary(warehouse, day), day))
    print()
    print(pipeline.kpi_summary(warehouse))
    print()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m defection_warehouse",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the whole demo on the sample business")
    demo.add_argument("--fresh", action="store_true", help="regenerate the sample")
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="run the nightly DAG for a day or a range of days")
    run.add_argument("start", help="first logical date, YYYY-MM-DD")
    run.add_argument("--end", help="last logical date (inclusive), YYYY-MM-DD")
    run.add_argument("--reextract", action="store_true",
                     help="pull each day's sources again instead of reusing its committed "
                          "landing batch (the committed batch is kept if the pull fails)")
    run.add_argument("--full-refresh", action="store_true",
                     help="rebuild every dbt model from scratch instead of incrementally")
    run.set_defaults(func=cmd_run)
    sample = sub.add_parser("sample", help="(re)generate the sample business")
    sample.set_defaults(func=cmd_sample)
    report = sub.add_parser("attribution-report",
                            help="compare attribution with the sample's planted truth")
    report.set_defaults(func=cmd_attribution_report)
    roles = sub.add_parser("setup-roles", help="create the loader, transformer and reporter "
                                               "roles (least privilege)")
    roles.set_defaults(func=cmd_setup_roles)
    lint = sub.add_parser("lint-sql", help="SQLFluff on the dbt models")
    lint.set_defaults(func=cmd_lint_sql)
    dbt = sub.add_parser("dbt", help="run dbt against the configured warehouse, e.g. "
                                     "`dbt build --select marts`")
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER)
    dbt.set_defaults(func=cmd_dbt)
    return parser


def main(argv: list[str] | None = None) -> int:
    from dotenv import load_dotenv

    load_dotenv(PROJECT_ROOT / ".env", override=False)  # the shell's values win
    args = parser().parse_args(argv)
    return args.func(args)
