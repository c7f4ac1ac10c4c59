"""Generate the whole sample: CRM database, billing store, survey inbox, planted truth."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from defection_warehouse.sample.billing_store import BillingStore
from defection_warehouse.sources.contracts import BILLING_ENTITIES, CRM_ENTITIES

from .simulate import GENERATOR_VERSION, Out, SampleParams, Simulator
from .writers import CrmWriter, billing_objects, write_survey_inbox, write_truth

BILLING_FILE = "billing.sqlite"
SURVEY_INBOX = "survey_inbox"
TRUTH_FILE = "planted_truth.csv"
SAMPLE_FILE = "sample.json"
BATCH = 1_000  # customers per flush to COPY / SQLite


def fingerprint(params: SampleParams) -> str:
    payload = json.dumps({"params": params.as_dict(), "generator_version": GENERATOR_VERSION},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _clean(out_dir: Path) -> None:
    for name in (BILLING_FILE, f"{BILLING_FILE}.tmp", f"{BILLING_FILE}.tmp-journal",
                 TRUTH_FILE, SAMPLE_FILE):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / SURVEY_INBOX, ignore_errors=True)


def generate(params: SampleParams, out_dir: Path | str, crm_url: str,
             progress: Callable[[str], Any] | None = print) -> dict[str, Any]:
    """Generate the sample business described by `params`.

    Writes the CRM source tables (schema ``crm`` at `crm_url`), ``billing.sqlite``,
    ``survey_inbox/``, ``planted_truth.csv`` and ``sample.json`` under `out_dir`, and
    returns a summary: params, row counts per output table, defections, elapsed seconds.
    The same params always produce byte-identical files and identical CRM rows.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean(out_dir)
    counts: Counter[str] = Counter()
    for e in (*CRM_ENTITIES, *BILLING_ENTITIES):
        counts[f"{e.source}.{e.name}"] = 0

    def stage(name: str, rows: int, since: float) -> None:
        say(f"[sample] {name:<26} {rows:>12,} rows {time.perf_counter() - since:8.1f}s")

    t = time.perf_counter()
    sim = Simulator(params)
    tmp_billing = out_dir / f"{BILLING_FILE}.tmp"
    n = params.customers
    out = Out()
    responses: list[tuple] = []
    exit_answers: list[tuple] = []
    truth: list[tuple] = []
    with CrmWriter(crm_url) as crm, BillingStore(tmp_billing) as store:
        crm.create()
        stage("crm schema", 0, t)
        t = time.perf_counter()
        next_report = max(1, n // 10)
        for i in range(n):
            sim.run_customer(i, out)
            if (i + 1) % BATCH and i + 1 != n:
                continue
            for table, rows in out.crm.items():
                crm.write(table, rows)
                counts[f"crm.{table}"] += len(rows)
            store.write(o for bc in out.billing for o in billing_objects(bc, counts))
            responses += out.responses
            exit_answers += out.exit_answers
            truth += out.truth
            out = Out()
            if i + 1 >= next_report or i + 1 == n:
                written = sum(v for k, v in counts.items()
                              if k.startswith(("crm.", "billing.")))
                stage(f"customers {i + 1:,}/{n:,}", written, t)
                next_report += max(1, n // 10)
        t = time.perf_counter()
        # the prices the items embed, as objects of their own for /v1/prices
        counts["billing.prices"] = store.add_missing_prices()
        stage("billing prices", counts["billing.prices"], t)
        t = time.perf_counter()
        crm.finish()
        stage("crm keys and indexes", sum(v for k, v in counts.items()
                                          if k.startswith("crm.")), t)
    os.replace(tmp_billing, out_dir / BILLING_FILE)

    t = time.perf_counter()
    counts.update(write_survey_inbox(out_dir / SURVEY_INBOX, sim.cal, sim.surveys,
                                     responses, exit_answers))
    stage("survey inbox", len(responses) + len(exit_answers) + len(sim.surveys), t)
    t = time.perf_counter()
    write_truth(out_dir / TRUTH_FILE, truth)
    stage("planted truth", len(truth), t)

    row_counts = dict(sorted(counts.items()))
    meta = {
        "generator_version": GENERATOR_VERSION,
        "params": params.as_dict(),
        "fingerprint": fingerprint(params),
        "window": {"start": sim.cal.start_date.isoformat(),
                   "end": sim.cal.end_date.isoformat()},
        "row_counts": row_counts,
        "defections": len(truth),
    }
    (out_dir / SAMPLE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    elapsed = time.perf_counter() - started
    say(f"[sample] done: {n:,} customers, {len(truth):,} defections in {elapsed:.1f}s")
    return {
        "params": params.as_dict(),
        "row_counts": row_counts,
        "defections": len(truth),
        "elapsed_seconds": round(elapsed, 3),
        "out_dir": str(out_dir),
        "fingerprint": meta["fingerprint"],
    }
