"""A full dbt build of this checkout against the same build of an earlier commit, in one run.

Usage: python bench/full_build_vs_commit.py COMMIT [--customers N] [--rounds N]

It needs the database the dbt part of run_bench.py leaves (`run_bench.py --only dbt`:
`dw_bench_dbt`, the sample's next day loaded). Each side gets its own copy of that
database, so both build the same raw rows. The earlier commit is checked out with `git
worktree add` into a temporary directory and runs with its own plugins and dbt project in
this virtualenv (the raw tables must not have changed in between). The full builds
(`nightly_build(..., full_refresh=True)`, each in a child process, as of the next day)
alternate, the earlier commit first in odd rounds and this checkout first in even ones,
each after the server settled; each side's fastest round counts. Then the marts each
side built are compared by row count and checksum (every table both build schemas hold).

The figures go to `bench/results.json` under `full_build_vs_commit` and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from psycopg import sql
from run_bench import PROJECT_ROOT, RESULTS, save, say, settle, warehouse_url

from defection_warehouse.config import Settings
from defection_warehouse.db import connect, with_database
from defection_warehouse.publish.swap import published_checksums

SOURCE_DB = "dw_bench_dbt"

CHILD = """
import sys, time
from datetime import date
from importlib import import_module
url, day, module = sys.argv[1], date.fromisoformat(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
import_module(module).nightly_build(url, as_of=day, full_refresh=True)
print(time.perf_counter() - t0)
"""


def runner_module(root: Path) -> str:
    """Where a checkout keeps nightly_build (the package was flat before it had stages)."""
    staged = root / "plugins" / "defection_warehouse" / "transform" / "dbt_runner.py"
    return ("defection_warehouse.transform.dbt_runner" if staged.exists()
            else "defection_warehouse.dbt_runner")


def copy_database(server: str, name: str) -> str:
    with connect(with_database(server, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("create database {} template {}").format(
            sql.Identifier(name), sql.Identifier(SOURCE_DB)))
    return with_database(server, name)


def timed_full_build(root: Path, url: str, day: str) -> float:
    settle(url)
    env = {**os.environ, "PYTHONPATH": str(root / "plugins")}
    out = subprocess.run([sys.executable, "-c", CHILD, url, day, runner_module(root)],
                         cwd=root, env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commit")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = Settings.from_env()
    server = warehouse_url(settings)
    day = settings.sample_end_date + timedelta(days=1)  # the next day the dbt part loaded
    commit = subprocess.run(["git", "rev-parse", "--short", args.commit], cwd=PROJECT_ROOT,
                            check=True, capture_output=True, text=True).stdout.strip()

    with tempfile.TemporaryDirectory(prefix="dw-bench-commit-") as tmp:
        earlier = Path(tmp) / commit
        subprocess.run(["git", "worktree", "add", "--detach", str(earlier), commit],
                       cwd=PROJECT_ROOT, check=True, capture_output=True)
        try:
            sides = {commit: (earlier, copy_database(server, "dw_bench_full_commit")),
                     "this checkout": (PROJECT_ROOT, copy_database(server, "dw_bench_full_head"))}
            seconds: dict[str, list[float]] = {name: [] for name in sides}
            for round_ in range(args.rounds):
                order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
                for name in order:
                    root, url = sides[name]
                    t0 = time.perf_counter()
                    seconds[name].append(timed_full_build(root, url, day.isoformat()))
                    say(f"round {round_ + 1}, {name}: {seconds[name][-1]:.1f}s "
                        f"({time.perf_counter() - t0:.0f}s with the settling)")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(earlier)],
                           cwd=PROJECT_ROOT, check=False, capture_output=True)

    build_schema = settings.build_schema
    marts = {name: published_checksums(url, build_schema) for name, (_, url) in sides.items()}
    old, new = marts[commit], marts["this checkout"]
    differ = sorted(t for t in old.keys() & new.keys() if old[t] != new[t])
    best_old, best_new = min(seconds[commit]), min(seconds["this checkout"])
    figures = {
        "commit": commit,
        "as_of": day.isoformat(),
        "commit_seconds_rounds": [round(s, 2) for s in seconds[commit]],
        "head_seconds_rounds": [round(s, 2) for s in seconds["this checkout"]],
        "head_vs_commit": round(best_new / best_old, 3),
        "marts_compared": len(old.keys() & new.keys()),
        "marts_differing": differ,
        "marts_only_in_commit": sorted(old.keys() - new.keys()),
        "marts_only_in_head": sorted(new.keys() - old.keys()),
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["full_build_vs_commit"] = figures
    save(results)
    print(json.dumps(figures, indent=2))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
