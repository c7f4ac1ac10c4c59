"""Compare every published mart with a saved snapshot: row count and checksum per table.

Run it before and after a change to the models on the same warehouse and the same nights:

    .venv/bin/python bench/compare_marts.py save /tmp/marts_before.json
    ... change the models, rebuild the same nights ...
    .venv/bin/python bench/compare_marts.py check /tmp/marts_before.json

The checksum is order-independent and leaves out run metadata (build stamps, run ids),
so equal checksums mean equal rows. `check` exits 1 and lists each table that differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from defection_warehouse.config import Settings
from defection_warehouse.publish.swap import published_checksums


def snapshot(warehouse_url: str, schema: str) -> dict[str, list]:
    return {table: [rows, digest]
            for table, (rows, digest) in published_checksums(warehouse_url, schema).items()}


def differences(before: dict[str, list], after: dict[str, list]) -> list[str]:
    out = []
    for table in sorted(before.keys() | after.keys()):
        if table not in after:
            out.append(f"{table}: missing now (had {before[table][0]:,} rows)")
        elif table not in before:
            out.append(f"{table}: new ({after[table][0]:,} rows)")
        elif before[table] != after[table]:
            out.append(f"{table}: {before[table][0]:,} rows before, {after[table][0]:,} now; "
                       f"checksum {before[table][1][:12]} before, {after[table][1][:12]} now")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("save", "check"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--schema", help="schema to read (default: DW_PUBLISH_SCHEMA)")
    parser.add_argument("--warehouse-url", help="default: WAREHOUSE_URL")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    url = args.warehouse_url or settings.warehouse_url
    if not url:
        parser.error("set WAREHOUSE_URL or pass --warehouse-url")
    now = snapshot(url, args.schema or settings.publish_schema)
    if args.action == "save":
        args.file.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n")
        print(f"saved {len(now)} tables to {args.file}")
        return 0
    diff = differences(json.loads(args.file.read_text()), now)
    for line in diff:
        print(line)
    print(f"{len(now)} tables, {len(diff)} differ")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
