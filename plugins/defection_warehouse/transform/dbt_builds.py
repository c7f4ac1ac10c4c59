"""When a nightly dbt build must be a full refresh, and the log that decides it.

The incremental staging tables read only the raw rows loaded since their newest row and
keep each key's newest version (macros/incremental_latest_version.sql). That is right as
long as every load since the previous build is of a later day than the loads before it
and replaced nothing. The rule, in one sentence: when a load since the previous build
replaced a batch (a rerun) or brought a day older than one loaded before it (a backfill or
a late delivery), the night's build is a full refresh.

`dw_meta.dbt_builds` records, for every nightly build that succeeded, the newest load it
saw (`loaded_through`). With no build recorded (a new warehouse, or one built before the
log existed) the build is a full refresh too.
"""

from __future__ import annotations

import logging
from datetime import date

from psycopg import Connection

from defection_warehouse.db import one_row

log = logging.getLogger(__name__)

DDL = """
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


def newest_load(conn: Connection) -> object:
    """The newest load a build starting now will see (None before the first load)."""
    if one_row(conn.execute("select to_regclass('raw_meta.load_audit')"))[0] is None:
        return None
    return one_row(conn.execute(
        "select max(loaded_at) from raw_meta.load_audit where status = 'loaded'"))[0]


def full_refresh_reason(conn: Connection) -> str | None:
    """Why tonight's build must be a full refresh, or None when an incremental build is
    right."""
    conn.execute(DDL)
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


def record_build(conn: Connection, *, as_of: date | None, loaded_through: object,
                 full_refresh: bool, reason: str | None) -> None:
    conn.execute(DDL)
    conn.execute(
        "insert into dw_meta.dbt_builds (as_of_date, loaded_through, full_refresh, reason) "
        "values (%s, %s, %s, %s)", (as_of, loaded_through, full_refresh, reason))
