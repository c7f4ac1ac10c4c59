"""Storage behind the local billing API: Stripe-shaped JSON objects in one SQLite file.

The sample generator writes it; the local server (`billing_server`) pages through it. The
objects are kept in the shape of the Stripe API versions before 2025-03-31.basil (the
server converts them to the shape a request asks for). The sample embeds its prices in
subscription items and invoice lines; `add_missing_prices` stores them as objects of their
own for ``/v1/prices`` (the generator calls it at the end, the server again on start for a
store written without them).
SQLite keeps a 100,000-customer sample off the heap and needs no server.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

OBJECT_TYPES = ("customer", "subscription", "invoice", "price", "charge", "refund", "dispute")

_SCHEMA = """
create table if not exists objects (
    type    text    not null,
    id      text    not null,
    created integer not null,
    status  text,
    body    text    not null,
    primary key (type, id)
);
create index if not exists objects_by_created on objects (type, created desc, id desc);
"""


class BillingStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> BillingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, objects: Iterable[dict[str, Any]]) -> int:
        """Insert or replace objects; each needs `object`, `id` and `created`."""
        rows = (
            (o["object"], o["id"], int(o["created"]), o.get("status"),
             json.dumps(o, separators=(",", ":")))
            for o in objects
        )
        with self._conn:
            cur = self._conn.executemany(
                "insert or replace into objects (type, id, created, status, body) "
                "values (?, ?, ?, ?, ?)",
                rows,
            )
        return cur.rowcount

    def get(self, type_: str, id_: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "select body from objects where type = ? and id = ?", (type_, id_)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def page(
        self,
        type_: str,
        *,
        limit: int,
        starting_after: tuple[int, str] | None = None,
        created: dict[str, int] | None = None,
        statuses: Iterable[str] | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page in Stripe order (newest first, ties by id descending).

        `starting_after` is the (created, id) of the last object of the previous page;
        `created` holds any of gt/gte/lt/lte. Returns the objects and `has_more`.
        """
        where = ["type = ?"]
        args: list[Any] = [type_]
        if starting_after is not None:
            # A row-value comparison lets SQLite walk the (type, created, id) index.
            where.append("(created, id) < (?, ?)")
            args += [starting_after[0], starting_after[1]]
        ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        for key, value in (created or {}).items():
            where.append(f"created {ops[key]} ?")
            args.append(int(value))
        if statuses is not None:
            statuses = list(statuses)
            where.append(f"status in ({', '.join('?' for _ in statuses)})")
            args += statuses
        sql = (
            f"select body from objects where {' and '.join(where)} "
            "order by created desc, id desc limit ?"
        )
        rows = self._conn.execute(sql, [*args, limit + 1]).fetchall()
        return [json.loads(r[0]) for r in rows[:limit]], len(rows) > limit

    def add_missing_prices(self) -> int:
        """Store a ``price`` object for every price the stored subscriptions' items embed
        that has none yet, created with the first subscription using it (Stripe's price
        predates its subscriptions). Returns how many were added."""
        rows = self._conn.execute(
            "select json_extract(item.value, '$.price.id'), "
            "json_extract(item.value, '$.price'), min(sub.created) "
            "from objects as sub, json_each(sub.body, '$.items.data') as item "
            "where sub.type = 'subscription' "
            "and json_extract(item.value, '$.price.id') is not null "
            "and not exists (select 1 from objects as p where p.type = 'price' "
            "and p.id = json_extract(item.value, '$.price.id')) "
            "group by 1 order by 1"
        ).fetchall()
        return self.write({**json.loads(price), "created": created}
                          for _, price, created in rows) if rows else 0

    def count(self, type_: str) -> int:
        return self._conn.execute(
            "select count(*) from objects where type = ?", (type_,)
        ).fetchone()[0]

    def iter_all(self, type_: str) -> Iterator[dict[str, Any]]:
        for (body,) in self._conn.execute(
            "select body from objects where type = ? order by created, id", (type_,)
        ):
            yield json.loads(body)
