"""A backfill and the same nights one by one publish the same warehouse.

Seven nights in one go (`dw run FIRST --end LAST`, the nightly DAG once per night, in
order) against seven `dw run DAY` commands, each its own process, on another warehouse
with a data folder (landing zone, Airflow home) of its own; both on the same sample
business, at the same time. Every published table
(the marts and kpi_history) must have the same rows, run metadata aside.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from defection_warehouse.db import connect
from defection_warehouse.publish.swap import published_checksums
from tests.builders import finish_dw, run_dw, start_dw, two_warehouses

pytestmark = pytest.mark.slow

LAST = date(2026, 10, 31)
NIGHTS = [LAST - timedelta(days=n) for n in range(6, -1, -1)]


def published_nights(warehouse_url: str) -> list[date]:
    with connect(warehouse_url) as conn:
        return [row[0] for row in conn.execute(
            "select as_of_date from dw_meta.publish_log order by id")]


def test_seven_nights_in_one_go_equal_seven_nights_one_by_one(new_database,
                                                              tmp_path: Path) -> None:
    one_by_one, backfill = two_warehouses(tmp_path, new_database, "nightly", "backfill")
    # the two sides at the same time, each on its own warehouse and data folder
    in_one_go = start_dw(["run", NIGHTS[0].isoformat(), "--end", NIGHTS[-1].isoformat()],
                         backfill)
    for night in NIGHTS:
        run_dw(["run", night.isoformat()], one_by_one)
    finish_dw(in_one_go)

    for env in (one_by_one, backfill):
        assert published_nights(env["WAREHOUSE_URL"]) == NIGHTS
    nightly = published_checksums(one_by_one["WAREHOUSE_URL"], "analytics")
    filled = published_checksums(backfill["WAREHOUSE_URL"], "analytics")
    assert "kpi_history" in nightly and len(nightly) >= 10, sorted(nightly)
    for table in ("kpi_history", "kpi_retention_monthly", "fct_customer_mrr_monthly",
                  "fct_mrr_movements", "dim_customers"):
        assert nightly[table][0] > 0, (table, nightly[table])
    differ = {table: (nightly[table], filled.get(table)) for table in nightly
              if filled.get(table) != nightly[table]}
    assert not differ and filled.keys() == nightly.keys(), differ
