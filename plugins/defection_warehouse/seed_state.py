"""Which seeds a nightly build can leave out: those already loaded from the same files.

A seed is configuration (the cause taxonomy, the signal rules, ...), so most nights it is
the same file as the night before. Reloading it and running its data tests again gives
the same tables and the same results, at dbt's cost per node. After each build the
fingerprint of every seed it loaded is kept in the seeds' schema; the next build leaves
out a seed whose fingerprint still matches, with the data tests that read nothing else.

A fingerprint covers the seed's CSV file and the files that configure it (the seeds'
properties files and dbt_project.yml), so a change to any of them loads the seed again.
A seed table changed by hand, outside dbt, is not noticed: a build with --full-refresh
loads every seed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from psycopg import sql

from defection_warehouse.db import connect

FINGERPRINT_TABLE = "seed_fingerprints"


def _manifest(dbt_dir: Path) -> dict | None:
    path = dbt_dir / "target" / "manifest.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _seeds(manifest: dict) -> dict[str, dict]:
    return {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "seed"}


def fingerprint(dbt_dir: Path, seed: dict) -> str:
    """sha256 of the seed's CSV, every properties file beside it and dbt_project.yml."""
    csv = dbt_dir / seed["original_file_path"]
    config_files = sorted(p for p in csv.parent.iterdir() if p.suffix in (".yml", ".yaml"))
    digest = hashlib.sha256()
    for path in (csv, *config_files, dbt_dir / "dbt_project.yml"):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _stored(warehouse_url: str, schema: str) -> dict[str, str]:
    """Fingerprints of the seeds last loaded, for the seed tables that still exist."""
    with connect(warehouse_url) as conn:
        if conn.execute("select to_regclass(format('%%I.%%I', %s::text, %s::text))",
                        (schema, FINGERPRINT_TABLE)).fetchone()[0] is None:
            return {}
        rows = conn.execute(sql.SQL(
            "select f.seed_name, f.fingerprint from {} as f "
            "where to_regclass(format('%I.%I', {}::text, f.seed_name)) is not null"
        ).format(sql.Identifier(schema, FINGERPRINT_TABLE), sql.Literal(schema))).fetchall()
    return dict(rows)


def unchanged_seed_nodes(warehouse_url: str, dbt_dir: Path) -> list[str]:
    """Names of the seeds whose files match what was last loaded, and of the data tests
    that read only those seeds: what a nightly build can exclude. Empty without a
    manifest (nothing is left out before the project has been parsed)."""
    manifest = _manifest(dbt_dir)
    if manifest is None:
        return []
    seeds = _seeds(manifest)
    unchanged: set[str] = set()
    for schema in {s["schema"] for s in seeds.values()}:
        stored = _stored(warehouse_url, schema)
        unchanged |= {uid for uid, s in seeds.items() if s["schema"] == schema
                      and stored.get(s["alias"]) == fingerprint(dbt_dir, s)}
    if not unchanged:
        return []
    tests = [n["name"] for n in manifest["nodes"].values()
             if n["resource_type"] == "test" and n["depends_on"]["nodes"]
             and set(n["depends_on"]["nodes"]) <= unchanged]
    return sorted(seeds[uid]["name"] for uid in unchanged) + sorted(tests)


def record_loaded_seeds(warehouse_url: str, dbt_dir: Path, results: Iterable) -> None:
    """Keep the fingerprint of every seed a successful build loaded."""
    manifest = _manifest(dbt_dir)
    if manifest is None:
        return
    seeds = _seeds(manifest)
    loaded = [seeds[r.node.unique_id] for r in results
              if r.node.unique_id in seeds and str(r.status).lower() == "success"]
    if not loaded:
        return
    with connect(warehouse_url) as conn:
        for schema in {s["schema"] for s in loaded}:
            table = sql.Identifier(schema, FINGERPRINT_TABLE)
            conn.execute(sql.SQL(
                "create table if not exists {} (seed_name text primary key, "
                "fingerprint text not null, loaded_at timestamptz not null)").format(table))
            conn.cursor().executemany(sql.SQL(
                "insert into {} values (%s, %s, now()) on conflict (seed_name) do update "
                "set fingerprint = excluded.fingerprint, loaded_at = excluded.loaded_at"
            ).format(table), [(s["alias"], fingerprint(dbt_dir, s)) for s in loaded
                              if s["schema"] == schema])
