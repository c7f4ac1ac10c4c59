"""When a nightly dbt build must be a full refresh, and the log that decides it.

The incremental staging tables read only the raw rows loaded since their newest row and
keep each key's newest version (macros/incremental_latest_version.sql). That is right as
long as every load since the previous build is of a later day than the loads before it
and replaced nothing. The rule, in one sentence: when a load since the previous build
replaced a batch (a rerun) or brought a day older than one loaded before it (a backfill or
a late delivery), the night's build is a full refresh.

`dw_meta.dbt_builds` records, for every nightly build that succeeded, the newest load it
saw (`loaded_through`). With no build recorded (a new warehouse, or one built before the
log existed) the build is a full refresh too. `ensure_table` creates the log; the planning
of a nightly build (dbt_runner.plan_nightly_build) calls it once, before anything here
reads or writes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import Connection

from defection_warehouse.db import one_row

log = logging.getLogger(__name__)

TABLE_DDL = """
create schema if not exists dw_meta;
create table if not exists dw_meta.dbt_builds (
    built_at       timestamptz not null default now(),
    as_of_date     date,
    loaded_through timestamptz,
    full_refresh   boolean     not null,
    reason         text
)
"""

# The first load since the previous build that breaks the incremental models' assumption.
FIRST_OUT_OF_ORDER_LOAD = """
with previous as (
    select max(loaded_through) as loaded_through from dw_meta.dbt_builds
)
select
    new.source,
    new.logical_date,
    new.rows_replaced > 0 as replaced
from raw_meta.load_audit as new
cross join previous
where
    new.status = 'loaded'
    and new.loaded_at > previous.loaded_through
    and (
        new.rows_replaced > 0
        or new.logical_date < (
            select max(old.logical_date)
            from raw_meta.load_audit as old
            where
                old.source = new.source
                and old.status = 'loaded'
                and old.loaded_at <= previous.loaded_through
        )
    )
order by new.loaded_at
limit 1
"""


def ensure_table(conn: Connection) -> None:
    """Create dw_meta.dbt_builds when the warehouse does not have it yet."""
    conn.execute(TABLE_DDL)


def newest_load(conn: Connection) -> datetime | None:
    """The newest load a build starting now will see (None before the first load)."""
    if one_row(conn.execute("select to_regclass('raw_meta.load_audit')"))[0] is None:
        return None
    return one_row(conn.execute(
        "select max(loaded_at) from raw_meta.load_audit where status = 'loaded'"))[0]


def full_refresh_reason(conn: Connection) -> str | None:
    """Why tonight's build must be a full refresh, or None when an incremental build is
    right."""
    if one_row(conn.execute("select max(loaded_through) from dw_meta.dbt_builds"))[0] is None:
        return "no earlier nightly build is recorded in dw_meta.dbt_builds"
    if newest_load(conn) is None:
        return None
    found = conn.execute(FIRST_OUT_OF_ORDER_LOAD).fetchone()
    if found is None:
        return None
    source, day, replaced = found
    if replaced:
        return f"the {source} batch of {day} was loaded again since the last build"
    return f"the {source} batch of {day} is older than a day loaded before it (late or backfill)"


@dataclass(frozen=True)
class BuildPlan:
    """What a nightly build is to be, decided before it starts: a full refresh or not, why,
    and the newest load it will see (recorded with the build once it succeeds)."""

    full_refresh: bool
    reason: str | None
    loaded_through: datetime | None

    def as_dict(self) -> dict[str, object]:
        """Plain values (an Airflow XCom between the DAG's tasks)."""
        return {"full_refresh": self.full_refresh, "reason": self.reason,
                "loaded_through": self.loaded_through.isoformat() if self.loaded_through
                else None}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BuildPlan:
        loaded = values.get("loaded_through")
        return cls(full_refresh=bool(values["full_refresh"]), reason=values.get("reason"),
                   loaded_through=datetime.fromisoformat(loaded) if loaded else None)


def plan_build(conn: Connection, *, full_refresh: bool = False) -> BuildPlan:
    """Tonight's build: a full refresh when asked for (`full_refresh`) or when the loads
    since the previous build require one (full_refresh_reason)."""
    reason = "asked for" if full_refresh else full_refresh_reason(conn)
    return BuildPlan(full_refresh=bool(reason), reason=reason,
                     loaded_through=newest_load(conn))


def record_build(conn: Connection, plan: BuildPlan, *, as_of: date | None) -> None:
    """Record a nightly build that succeeded: the next night's rule compares with it. The
    build was planned first (plan_nightly_build), so the table exists."""
    conn.execute(
        "insert into dw_meta.dbt_builds (as_of_date, loaded_through, full_refresh, reason) "
        "values (%s, %s, %s, %s)",
        (as_of, plan.loaded_through, plan.full_refresh, plan.reason))
