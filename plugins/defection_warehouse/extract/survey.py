"""Survey extract: pick up the survey platform's export files from the inbox.

Exports are named ``<entity>_<YYYY-MM-DD>.csv`` (surveys, responses, exit_answers). The
batch for logical date D takes the files dated after the previous committed survey batch
and up to D, and lands them byte for byte; the inbox is only read, never changed, so it
may be a read-only bucket. Files that do not follow the naming are listed in the manifest
as ignored rather than silently skipped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date, timedelta

import fsspec

from defection_warehouse.contracts import SURVEY_ENTITIES
from defection_warehouse.landing import LandingZone, Manifest

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<entity>[a-z_]+)_(?P<day>\d{4}-\d{2}-\d{2})\.csv$")


def extract_survey(
    zone: LandingZone,
    logical_date: date,
    inbox_url: str,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    say = progress or log.info
    batch = zone.batch("survey", logical_date)
    if batch.exists() and not force:
        say(f"survey {logical_date}: landing batch already committed, reusing it")
        return batch.manifest()
    batch.reset()

    previous = zone.previous_batch("survey", logical_date)
    after = previous.logical_date if previous else None
    fs, inbox = fsspec.core.url_to_fs(inbox_url)
    if not fs.exists(inbox):
        raise FileNotFoundError(f"survey inbox {inbox_url} does not exist (SURVEY_INBOX)")
    entities = {e.name: e for e in SURVEY_ENTITIES}
    picked: dict[str, int] = {}
    ignored: list[str] = []
    for path in sorted(fs.ls(inbox, detail=False)):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        match = _NAME.match(name)
        day = None
        if match and match["entity"] in entities:
            try:
                day = date.fromisoformat(match["day"])
            except ValueError:
                day = None
        if day is None:
            ignored.append(name)
            continue
        if day > logical_date or (after is not None and day <= after):
            continue
        landed = batch.add_copy(entities[match["entity"]], path, fs, name)
        picked[match["entity"]] = picked.get(match["entity"], 0) + landed.rows
    if ignored:
        say(f"survey: ignored {len(ignored)} inbox file(s) not named <entity>_<date>.csv: "
            + ", ".join(ignored[:5]))
    for name, rows in sorted(picked.items()):
        say(f"survey.{name}: {rows} rows from the inbox")
    start = (after + timedelta(days=1)).isoformat() if after else None
    return batch.commit(
        SURVEY_ENTITIES,
        {"start": start, "end": (logical_date + timedelta(days=1)).isoformat()},
        state={"rows": picked, "ignored_files": ignored, "inbox": inbox_url},
    )
