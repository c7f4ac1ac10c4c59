"""Command line: ``python -m defection_warehouse.sample --customers N --months M ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

from defection_warehouse.config import PROJECT_ROOT

from .build import generate
from .simulate import SampleParams

_DEFAULTS = SampleParams()


def _positive(kind: str, low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{kind} must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{kind} must be from {low} to {high}, got {value}")
        return value
    return parse


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a whole number, got {text!r}") from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"end date must be YYYY-MM-DD, got {text!r}") from None


def _default_out() -> Path:
    root = os.environ.get("DW_DATA_DIR") or str(PROJECT_ROOT / ".data")
    return Path(root) / "sample"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m defection_warehouse.sample",
        description="Generate the deterministic sample business: CRM tables (schema crm), "
                    "billing.sqlite, survey_inbox/, planted_truth.csv and sample.json.")
    p.add_argument("--customers", type=_positive("customers", 1, 5_000_000),
                   default=_DEFAULTS.customers,
                   help=f"number of customers (default {_DEFAULTS.customers})")
    p.add_argument("--months", type=_positive("months", 1, 120), default=_DEFAULTS.months,
                   help=f"calendar months simulated, ending with the end date's month "
                        f"(default {_DEFAULTS.months})")
    p.add_argument("--seed", type=_seed, default=_DEFAULTS.seed,
                   help=f"random seed (default {_DEFAULTS.seed})")
    p.add_argument("--end-date", type=_date, default=_DEFAULTS.end_date,
                   help=f"last simulated day, YYYY-MM-DD (default {_DEFAULTS.end_date})")
    p.add_argument("--difficulty", choices=("standard", "hard"), default=_DEFAULTS.difficulty,
                   help="standard, or hard: with the noise of a real business (healthy "
                        "customers with slow or badly rated tickets, low-touch accounts, "
                        "mostly silent defectors, face-saving reasons, accounts without "
                        "a CRM link; default standard)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default $DW_DATA_DIR/sample or .data/sample)")
    p.add_argument("--crm-url", default=os.environ.get("CRM_URL"),
                   help="PostgreSQL URL of the CRM source database; its schema crm is "
                        "dropped and recreated (default $CRM_URL)")
    p.add_argument("--quiet", action="store_true", help="print only the JSON summary")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.crm_url:
        parser.error("--crm-url is required (or set CRM_URL)")
    params = SampleParams(customers=args.customers, months=args.months, seed=args.seed,
                          end_date=args.end_date, difficulty=args.difficulty)
    out = args.out or _default_out()
    progress = None if args.quiet else lambda msg: print(msg, flush=True)
    summary = generate(params, out, args.crm_url, progress=progress)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
