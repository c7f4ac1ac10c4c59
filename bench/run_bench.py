"""Benchmarks, measured against baselines taken in the same run (see docs/benchmarks.md).

Raw load: the project's loader against `psql \\copy` of the same landing files into the
same tables, each into its own fresh database on the same server. The loader runs in a
child process so its peak RSS is its own; it is measured at two sample sizes to show that
memory does not grow with file size.

Pipeline: one whole night through every step, and the quality gates' share of it.

Scale: the same whole night at several sample sizes, each stage's seconds at each size.

Usage: python bench/run_bench.py [--customers 100000] [--months 24]
                                 [--only load|dbt|pipeline|scale] [--scale-sizes 10000,30000]
Writes bench/results.json (keys are merged, so later stages can add theirs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from defection_warehouse.cli import say, warehouse_url
from defection_warehouse.config import PROJECT_ROOT, Settings
from defection_warehouse.db import connect, one_row, qualified, with_database
from defection_warehouse.embedded import ensure_database
from defection_warehouse.load.raw_loader import RawLoader
from defection_warehouse.sources.contracts import SOURCES, entities_for
from defection_warehouse.sources.landing import LandingZone

RESULTS = PROJECT_ROOT / "bench" / "results.json"
SCALE_SIZES = (10_000, 30_000, 100_000)
# run_night's steps under the names the scale figures use
STAGES = {"extract": "extract", "load": "load", "validate_raw": "raw_gate",
          "transform": "dbt", "validate_build": "build_gate", "publish": "publish"}

LOAD_CHILD = """
import json, resource, sys, time
from datetime import date
from defection_warehouse.sources.landing import LandingZone
from defection_warehouse.load.raw_loader import RawLoader
url, landing, day = sys.argv[1], sys.argv[2], date.fromisoformat(sys.argv[3])
loader = RawLoader(url, LandingZone(landing), progress=lambda m: None)
t0 = time.perf_counter()
rows = sum(loader.load(s, day).rows_loaded for s in ("crm", "billing", "survey"))
seconds = time.perf_counter() - t0
# VmHWM is this address space's own peak; ru_maxrss survives exec on Linux and would
# report the parent's peak when the parent (e.g. after generating a sample) was larger.
try:
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mb": peak_kb / 1024}))
"""


def fresh_database(server_url: str, name: str) -> str:
    admin = with_database(server_url, "postgres")
    with connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(name)))
    ensure_database(admin, name)
    return with_database(server_url, name)


def database_exists(server_url: str, name: str) -> bool:
    with connect(with_database(server_url, "postgres")) as conn:
        return conn.execute("select 1 from pg_database where datname = %s",
                            (name,)).fetchone() is not None


def bench_dir(customers: int) -> Path:
    """Where a sample size's files live: its sample, landing zones and dbt results."""
    return Settings.from_env().data_dir / "bench" / f"c{customers}"


def megabytes(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def psql_binary() -> str:
    found = shutil.which("psql")
    if found:
        return found
    from defection_warehouse.embedded import _bin

    return _bin("psql")


def prepare_sample(server: str, out: Path, customers: int, months: int, end: date) -> Path:
    from defection_warehouse.sample import SampleParams, generate

    params = SampleParams(customers=customers, months=months, seed=7, end_date=end)
    stamp = out / "sample.json"
    crm_name = f"dw_bench_crm_{customers}"
    if (stamp.exists() and json.loads(stamp.read_text()).get("bench_params") == repr(params)
            and database_exists(server, crm_name)):
        say(f"reusing the {customers}-customer sample in {out}")
        return out
    crm = fresh_database(server, crm_name)
    if out.exists():
        shutil.rmtree(out)
    say(f"generating a {customers}-customer sample")
    summary = generate(params, out, crm, progress=lambda m: say("  " + m))
    summary["bench_params"] = repr(params)
    stamp.write_text(json.dumps(summary, default=str))
    return out


def extract_all(server: str, sample: Path, landing: Path, customers: int, day: date) -> None:
    from defection_warehouse.sample.billing_server import BillingServer
    from defection_warehouse.sources.billing import extract_billing
    from defection_warehouse.sources.crm import extract_crm
    from defection_warehouse.sources.survey import extract_survey

    zone = LandingZone(str(landing))
    if all(zone.batch(s, day).exists() for s in SOURCES):
        say(f"reusing the landing batches in {landing}")
        return
    crm = with_database(server, f"dw_bench_crm_{customers}")
    t0 = time.perf_counter()
    extract_crm(zone, day, crm, force=True, progress=lambda m: say("  " + m))
    key = "sk_bench_" + os.urandom(6).hex()
    with BillingServer(sample / "billing.sqlite", key) as server_:
        extract_billing(zone, day, server_.url, key, force=True,
                        progress=lambda m: say("  " + m))
    extract_survey(zone, day, str(sample / "survey_inbox"), force=True,
                   progress=lambda m: say("  " + m))
    say(f"extracted in {time.perf_counter() - t0:.0f}s")


def run_loader(url: str, landing: Path, day: date) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "plugins")}
    out = subprocess.run([sys.executable, "-c", LOAD_CHILD, url, str(landing), day.isoformat()],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_psql_copy(url: str, landing: Path, day: date) -> tuple[float, int]:
    """`psql \\copy` of every landing file, one psql session, stamps via PGOPTIONS."""
    zone = LandingZone(str(landing))
    script = []
    rows = 0
    for source in SOURCES:
        batch = zone.batch(source, day)
        manifest = batch.manifest()
        entities = {e.name: e for e in entities_for(source)}
        for f in manifest.files:
            e = entities[f.entity]
            path = batch.file_url(f.file)
            cols = ", ".join(e.column_names)
            script.append(f"\\copy {e.raw_table} ({cols}) from '{path}' "
                          "with (format csv, header true)")
            rows += f.rows
    env = {**os.environ, "PGOPTIONS": "-c dw.batch_id=bench -c dw.logical_date="
           f"{day.isoformat()} -c dw.source_file=bench -c TimeZone=UTC"}
    t0 = time.perf_counter()
    subprocess.run([psql_binary(), url, "-v", "ON_ERROR_STOP=1", "-q"],
                   input="\n".join(script) + "\n", env=env, check=True, text=True,
                   capture_output=True)
    return time.perf_counter() - t0, rows


def count_rows(url: str) -> int:
    total = 0
    with connect(url) as conn:
        for source in SOURCES:
            for e in entities_for(source):
                total += one_row(conn.execute(sql.SQL("select count(*) from {}").format(
                    qualified(e.raw_table))))[0]
    return total


def bench_load(server: str, customers: int, months: int, day: date) -> dict[str, object]:
    base = bench_dir(customers)
    sample = prepare_sample(server, base / "sample", customers, months, day)
    landing = base / "landing"
    extract_all(server, sample, landing, customers, day)
    size = sum(p.stat().st_size for p in landing.rglob("*.csv"))

    # Two rounds in alternating order (loader first, then psql first), each into fresh
    # databases, and each side's faster round counts: neither side always meets the warmer
    # cache, or a server still writing out the sample it has just generated.
    files_rows = 0

    def measure_loader() -> dict[str, float]:
        db = fresh_database(server, "dw_bench_loader")
        load = run_loader(db, landing, day)
        say(f"  loader: {load['rows']:,} rows in {load['seconds']:.1f}s, "
            f"peak RSS {load['peak_rss_mb']:.0f} MB")
        if count_rows(db) != load["rows"]:
            raise SystemExit(f"loader reported {load['rows']} rows, the tables hold "
                             f"{count_rows(db)}")
        return load

    def measure_psql() -> float:
        nonlocal files_rows
        db = fresh_database(server, "dw_bench_psql")
        with connect(db, autocommit=True) as conn:  # same tables, same DDL
            for source in SOURCES:
                RawLoader(db, LandingZone(str(landing))).ensure_tables(conn, source)
        seconds, files_rows = run_psql_copy(db, landing, day)
        say(f"  psql \\copy: {files_rows:,} rows in {seconds:.1f}s")
        if count_rows(db) != files_rows:
            raise SystemExit(f"psql \\copy left {count_rows(db)} rows, the files hold "
                             f"{files_rows}")
        return seconds

    say(f"loading {size / 1e6:.0f} MB of landing files, twice each, in alternating order")
    loads: list[dict[str, float]] = []
    copies: list[float] = []
    for loader_first in (True, False):
        if loader_first:
            loads.append(measure_loader())
            copies.append(measure_psql())
        else:
            copies.append(measure_psql())
            loads.append(measure_loader())
    if any(load["rows"] != files_rows for load in loads):
        raise SystemExit(f"row counts differ: loader {[r['rows'] for r in loads]}, "
                         f"psql {files_rows}")
    best = min(loads, key=lambda r: r["seconds"])
    return {"load_seconds": round(best["seconds"], 2),
            "psql_copy_seconds": round(min(copies), 2),
            "load_vs_copy_ratio": round(best["seconds"] / min(copies), 3),
            "load_seconds_rounds": [round(r["seconds"], 2) for r in loads],
            "psql_copy_seconds_rounds": [round(x, 2) for x in copies],
            "rows_loaded": int(best["rows"]),
            "landing_mb": round(size / 1e6, 1),
            "load_peak_rss_mb": round(max(r["peak_rss_mb"] for r in loads), 1)}


def settle(url: str, limit_seconds: float = 120) -> None:
    """Let the server finish what earlier steps left it (dirty pages of a load or a build,
    autovacuum of the tables they wrote), so each timed build starts from a quiet server."""
    with connect(url, autocommit=True) as conn:
        # a server we may not checkpoint: the wait below still applies
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("checkpoint")
        deadline = time.monotonic() + limit_seconds
        while time.monotonic() < deadline and one_row(conn.execute(
                "select count(*) from pg_stat_activity "
                "where backend_type = 'autovacuum worker'"))[0]:
            time.sleep(1)


def run_timed_dbt(url: str, day: date, *, full_refresh: bool, keep_results: Path) -> float:
    """A timed nightly build; dbt's run_results.json (every node's time) is kept as
    `keep_results`, to see where the build's time goes."""
    from defection_warehouse.transform.dbt_runner import DBT_DIR, nightly_build

    settle(url)
    t0 = time.perf_counter()
    nightly_build(url, as_of=day, full_refresh=full_refresh)
    seconds = time.perf_counter() - t0
    shutil.copy(DBT_DIR / "target" / "run_results.json", keep_results)
    return seconds


def bench_dbt(server: str, customers: int, day: date) -> dict[str, object]:
    """Full dbt build vs the incremental build after one more day (about 1% changed),
    and the same full build through the DAG's dbt stage."""
    from datetime import timedelta

    from defection_warehouse.cli import dbt_parse
    from defection_warehouse.sample.next_day import add_day

    base = bench_dir(customers)
    url = fresh_database(server, "dw_bench_dbt")
    zone_dir = base / "landing"
    loader = RawLoader(url, LandingZone(str(zone_dir)), progress=lambda m: None)
    for source in SOURCES:
        loader.load(source, day)
    dbt_parse(url)
    say("dbt: full build of the first day")
    first_full = run_timed_dbt(url, day, full_refresh=True,
                               keep_results=base / "run_results_first_full.json")
    say(f"  {first_full:.1f}s")

    # One more day: a copy of the sources, changed by about 1%, extracted and loaded.
    nxt = day + timedelta(days=1)
    scratch = base / "next_day"
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(base / "sample" / "survey_inbox", scratch / "survey_inbox")
    shutil.copy(base / "sample" / "billing.sqlite", scratch / "billing.sqlite")
    crm_copy = with_database(server, "dw_bench_crm_next")
    admin = with_database(server, "postgres")
    with connect(admin, autocommit=True) as conn:
        conn.execute("drop database if exists dw_bench_crm_next with (force)")
        conn.execute(sql.SQL("create database dw_bench_crm_next template {}").format(
            sql.Identifier(f"dw_bench_crm_{customers}")))
    changed = add_day(crm_copy, scratch, nxt)
    say(f"one more day: {changed}")
    next_landing = scratch / "landing"
    shutil.copytree(zone_dir, next_landing)  # the previous batches: incremental windows
    _extract_day(crm_copy, scratch, next_landing, nxt)
    loader = RawLoader(url, LandingZone(str(next_landing)), progress=lambda m: None)
    rows_next = sum(loader.load(s, nxt).rows_loaded for s in SOURCES)

    say("dbt: incremental build of the next day")
    incremental = run_timed_dbt(url, nxt, full_refresh=False,
                                keep_results=base / "run_results_incremental.json")
    say(f"  {incremental:.1f}s")
    say("dbt: full build of the same data")
    full = run_timed_dbt(url, nxt, full_refresh=True,
                         keep_results=base / "run_results_full.json")
    say(f"  {full:.1f}s")
    say("dbt: the same full build through the DAG's dbt stage")
    settle(url)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "plugins")}
    out = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "dbt_in_dag.py"),
                          url, nxt.isoformat()], env=env, check=True, capture_output=True,
                         text=True)
    in_dag = json.loads(out.stdout.strip().splitlines()[-1])
    say(f"  {in_dag['seconds']:.1f}s for {in_dag['tasks']} tasks (their span "
        f"{in_dag['span_seconds']:.1f}s, the dbt build task {in_dag['producer_seconds']:.1f}s)")
    return {
        "dbt_full_seconds": round(full, 2),
        "dbt_incremental_seconds": round(incremental, 2),
        "dbt_incremental_vs_full": round(incremental / full, 3),
        "dbt_in_dag_seconds": round(in_dag["seconds"], 2),
        "dbt_in_dag_vs_full": round(in_dag["seconds"] / full, 3),
        "dbt_in_dag_tasks": in_dag["tasks"],
        "dbt_in_dag_span_seconds": round(in_dag["span_seconds"], 2),
        "dbt_in_dag_producer_seconds": round(in_dag["producer_seconds"], 2),
        "next_day_rows_loaded": rows_next,
        "next_day_changes": changed,
    }


@dataclass(frozen=True)
class Night:
    """One whole night of the benchmark: run_night's step seconds and what it left."""

    step_seconds: dict[str, float]
    seconds: float
    rows_loaded: int
    landing_mb: float
    database_mb: float


def run_bench_night(server: str, customers: int, day: date) -> Night:
    """The whole night for the sample's last day, as the DAG runs it (pipeline.run_night):
    extract from the sources into a fresh landing zone, load, raw gate, dbt build (full
    refresh), build gate, publish, into a fresh database, after the server settled."""
    from defection_warehouse.pipeline import Endpoints, run_night
    from defection_warehouse.sample.billing_server import BillingServer

    base = bench_dir(customers)
    url = fresh_database(server, "dw_bench_pipeline")
    landing = base / "pipeline_landing"
    if landing.exists():
        shutil.rmtree(landing)
    settings = Settings.from_env().model_copy(update={
        "landing_url": str(landing), "survey_inbox": str(base / "sample" / "survey_inbox")})
    crm = with_database(server, f"dw_bench_crm_{customers}")
    key = "sk_bench_" + os.urandom(6).hex()
    settle(url)
    say(f"pipeline at {customers:,} customers: one whole night (extract, load, raw gate, "
        "dbt, build gate, publish)")
    with BillingServer(base / "sample" / "billing.sqlite", key) as api:
        t0 = time.perf_counter()
        done = run_night(day, Endpoints(url, crm, api.url, key), settings,
                         run_id=f"bench__{day.isoformat()}", full_refresh=True,
                         progress=lambda m: say("  " + m))
        total = time.perf_counter() - t0
    night = Night(step_seconds=done["step_seconds"], seconds=total,
                  rows_loaded=sum(source["rows_loaded"] for source in done["load"]),
                  landing_mb=megabytes(landing), database_mb=database_mb(url))
    say(f"  {total:.1f}s: {night.step_seconds}")
    shutil.rmtree(landing)
    return night


def database_mb(url: str) -> float:
    with connect(url) as conn:
        size = one_row(conn.execute("select pg_database_size(current_database())"))[0]
    return round(size / 1e6, 1)


def bench_pipeline(server: str, customers: int, day: date) -> dict[str, object]:
    """The whole night, and the quality gates' share of it (gx_seconds: the two gates)."""
    night = run_bench_night(server, customers, day)
    steps = night.step_seconds
    gx = steps["validate_raw"] + steps["validate_build"]
    say(f"  of which the quality gates {gx:.1f}s")
    return {"pipeline_seconds": round(night.seconds, 2), "gx_seconds": round(gx, 2),
            "gx_vs_pipeline": round(gx / night.seconds, 3), "pipeline_step_seconds": steps}


def bench_scale(server: str, sizes: list[int], months: int, day: date,
                ) -> Iterator[tuple[str, dict[str, Any]]]:
    """The whole night at each sample size (generated first when missing), size by size:
    each stage's seconds, the raw rows loaded, and the disk the size takes (its sample
    files and CRM database, the night's landing files and warehouse)."""
    for customers in sizes:
        sample = prepare_sample(server, bench_dir(customers) / "sample", customers, months,
                                day)
        night = run_bench_night(server, customers, day)
        seconds = {STAGES[step]: s for step, s in night.step_seconds.items()}
        crm = with_database(server, f"dw_bench_crm_{customers}")
        yield str(customers), {
            "seconds": {**seconds, "total": round(night.seconds, 2)},
            "raw_rows_loaded": night.rows_loaded, "landing_mb": night.landing_mb,
            "database_mb": night.database_mb, "sample_mb": megabytes(sample),
            "crm_database_mb": database_mb(crm), "months": months, **run_stamp()}


def run_stamp() -> dict[str, str]:
    return {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                       f"{platform.python_version()}"}


def sizes_arg(text: str) -> list[int]:
    return [int(size.replace("_", "")) for size in text.split(",") if size.strip()]


def _extract_day(crm_url: str, sample: Path, landing: Path, day: date) -> None:
    from defection_warehouse.sample.billing_server import BillingServer
    from defection_warehouse.sources.billing import extract_billing
    from defection_warehouse.sources.crm import extract_crm
    from defection_warehouse.sources.survey import extract_survey

    zone = LandingZone(str(landing))
    extract_crm(zone, day, crm_url, progress=lambda m: None)
    key = "sk_bench_" + os.urandom(6).hex()
    with BillingServer(sample / "billing.sqlite", key) as server:
        extract_billing(zone, day, server.url, key, progress=lambda m: None)
    extract_survey(zone, day, str(sample / "survey_inbox"), progress=lambda m: None)


def save(results: dict[str, Any]) -> None:
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int,
                        default=int(os.environ.get("BENCH_CUSTOMERS", 100_000)))
    parser.add_argument("--small-customers", type=int, default=2_000,
                        help="second, small size for the memory comparison")
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--only", choices=["load", "dbt", "pipeline", "scale"],
                        help="run one part")
    parser.add_argument("--scale-sizes", type=sizes_arg, default=list(SCALE_SIZES),
                        help="customers of each sample the scale part measures, "
                             "comma-separated (default 10000,30000,100000)")
    args = parser.parse_args()
    settings = Settings.from_env()
    day = settings.sample_end_date
    server = warehouse_url(settings)

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.only in (None, "load"):
        small = bench_load(server, args.small_customers, args.months, day)
        big = bench_load(server, args.customers, args.months, day)
        results.update(big)
        results.update({"load_peak_rss_mb_small": small["load_peak_rss_mb"],
                        "landing_mb_small": small["landing_mb"]})
    if args.only in (None, "dbt"):
        results.update(bench_dbt(server, args.customers, day))
    if args.only in (None, "pipeline"):
        results.update(bench_pipeline(server, args.customers, day))
    if args.only != "scale":  # the scale figures carry their own
        results.update({"customers": args.customers, "months": args.months, **run_stamp()})
    save(results)
    if args.only in (None, "scale"):  # saved size by size: a long run keeps what it measured
        for customers, figures in bench_scale(server, args.scale_sizes, args.months, day):
            results.setdefault("scale", {})[customers] = figures
            save(results)
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
