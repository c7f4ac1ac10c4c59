"""Survey extract: pick up the survey platform's export files from the inbox.

Exports are named ``<entity>_<YYYY-MM-DD>.csv`` (surveys, responses, exit_answers) and are
landed byte for byte; the inbox is only read, never changed, so it may be a read-only
bucket. Files are selected by name and checksum, not by the date in their name alone: the
batch for logical date D lands every correctly named file dated on or before D whose
(file name, sha256) is not in a committed survey batch dated before D. So

- a new export (dated after the previous committed batch) is landed once;
- a late export, dated on or before the previous batch but never landed, is landed by the
  next batch and reported as late;
- a re-delivered export, whose name was landed before with other bytes, is landed again
  as a new version and reported as re-delivered (staging keeps the newest version of a
  record, by logical date);
- an export already landed unchanged is not landed again;
- an export dated after D waits for a later night (counted in the message);
- a file that does not follow the naming is listed in the manifest as ignored rather than
  silently skipped.

Old exports are not hashed every night: a file whose name was landed before with another
size is re-delivered without reading it; with the same size and the same modification
stamp (mtime, or an object store's ETag) as recorded when it was landed or last checked
(manifest state ``inbox_files``) it is unchanged; only otherwise is it hashed.

The manifest's extract window is the span of export dates new to this batch, [day after
the previous batch, D]; late and re-delivered files from before it are named in its state
(``new_files``, ``late_files``, ``redelivered_files``, ``ignored_files``, with counts of
the files already landed and of those waiting). The batch lands as
``<landing>/survey/<D>/v<UTC stamp>-<uuid>/<file>`` under a manifest
``<landing>/survey/<D>/_manifest.json`` written last (see `defection_warehouse.sources.landing`); a
forced re-extract that fails (the inbox gone, say) leaves the committed batch as it was.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import fsspec

from defection_warehouse.sources.contracts import SURVEY_ENTITIES
from defection_warehouse.sources.landing import CHUNK, LandingZone, Manifest

log = logging.getLogger(__name__)

SOURCE = "survey"
_NAME = re.compile(r"^(?P<entity>[a-z_]+)_(?P<day>\d{4}-\d{2}-\d{2})\.csv$")
# A listing's cheap fingerprint of a file's content, in order of preference.
_STAMP_KEYS = ("ETag", "etag", "md5Hash", "mtime", "LastModified", "last_modified",
               "updated")


@dataclass(frozen=True)
class _Version:
    """One content of an inbox file known to a committed batch."""

    batch: date
    bytes: int
    sha256: str
    stamp: str | None  # the inbox file's stamp when it was landed or checked, if recorded


def _stamp(info: dict[str, Any]) -> str | None:
    for key in _STAMP_KEYS:
        value = info.get(key)
        if value not in (None, ""):
            return f"{key}:{value}"
    return None


def _sha256(fs: Any, path: str) -> str:
    sha = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _known_versions(zone: LandingZone, before: date) -> dict[str, list[_Version]]:
    """What the committed survey batches dated before `before` hold, by file name."""
    known: dict[str, list[_Version]] = {}
    for day in zone.committed_dates(SOURCE):
        if day >= before:
            break
        manifest = zone.batch(SOURCE, day).manifest()
        checked = manifest.state.get("inbox_files") or {}
        for f in manifest.files:
            info = checked.get(f.file) or {}
            stamp = info.get("stamp") if info.get("sha256") == f.sha256 else None
            known.setdefault(f.file, []).append(_Version(day, f.bytes, f.sha256, stamp))
        landed = {f.file for f in manifest.files}
        for name, info in checked.items():  # hashed and found unchanged that night
            if name not in landed:
                known.setdefault(name, []).append(
                    _Version(day, info["bytes"], info["sha256"], info.get("stamp")))
    return known


def extract_survey(
    zone: LandingZone,
    logical_date: date,
    inbox_url: str,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    say = progress or log.info
    batch = zone.batch(SOURCE, logical_date)
    if batch.exists() and not force:
        say(f"survey {logical_date}: landing batch already committed, reusing it")
        return batch.manifest()

    # A new version of the batch: a failure leaves the committed one as it was.
    with batch.new_version(say):
        previous = zone.previous_batch(SOURCE, logical_date)
        after = previous.logical_date if previous else None
        known = _known_versions(zone, logical_date)
        fs, inbox = fsspec.core.url_to_fs(inbox_url)
        if not fs.exists(inbox):
            raise FileNotFoundError(f"survey inbox {inbox_url} does not exist (SURVEY_INBOX)")
        entities = {e.name: e for e in SURVEY_ENTITIES}
        picked: dict[str, int] = {}
        ignored: list[str] = []
        new: list[str] = []
        late: list[str] = []
        redelivered: list[str] = []
        unchanged = waiting = 0
        # What this batch knows of each inbox file it landed or hashed, for later nights.
        inbox_files: dict[str, dict[str, Any]] = {}
        listing = sorted(fs.ls(inbox, detail=True), key=lambda e: e["name"])
        for info in listing:
            path = info["name"]
            name = path.rstrip("/").rsplit("/", 1)[-1]
            match = _NAME.match(name)
            day = None
            if match and match["entity"] in entities and info.get("type") != "directory":
                try:
                    day = date.fromisoformat(match["day"])
                except ValueError:
                    day = None
            if day is None:
                ignored.append(name)
                continue
            if day > logical_date:
                waiting += 1
                continue
            size, stamp = info.get("size"), _stamp(info)
            versions = known.get(name, [])
            if versions:
                same_size = [v for v in versions if size is None or v.bytes == size]
                if same_size and stamp is not None and any(v.stamp == stamp
                                                           for v in same_size):
                    unchanged += 1
                    continue
                if same_size:
                    sha = _sha256(fs, path)
                    seen = next((v for v in same_size if v.sha256 == sha), None)
                    if seen is not None:
                        unchanged += 1
                        inbox_files[name] = {"bytes": seen.bytes, "sha256": sha,
                                             "stamp": stamp}
                        continue
                batches = ", ".join(sorted({v.batch.isoformat() for v in versions}))
                say(f"survey: {name} re-delivered with different content (landed before by "
                    f"the batch of {batches}); landing it again as a new version")
                redelivered.append(name)
            elif after is not None and day <= after:
                say(f"survey: {name} is late (dated {day}, on or before the previous batch "
                    f"{after}); landing it now")
                late.append(name)
            else:
                new.append(name)
            assert match is not None  # a file without a match has no day (skipped above)
            landed = batch.add_copy(entities[match["entity"]], path, fs, name)
            inbox_files[name] = {"bytes": landed.bytes, "sha256": landed.sha256,
                                 "stamp": stamp}
            picked[match["entity"]] = picked.get(match["entity"], 0) + landed.rows

        if ignored:
            say(f"survey: ignored {len(ignored)} inbox file(s) not named "
                "<entity>_<date>.csv: " + ", ".join(ignored[:5]))
        if unchanged:
            say(f"survey: {unchanged} inbox file(s) already landed unchanged, not landed again")
        if waiting:
            say(f"survey: {waiting} inbox file(s) dated after {logical_date} left for a "
                "later night")
        for entity_name, rows in sorted(picked.items()):
            say(f"survey.{entity_name}: {rows} rows from the inbox")
        start = (after + timedelta(days=1)).isoformat() if after else None
        return batch.commit(
            SURVEY_ENTITIES,
            {"start": start, "end": (logical_date + timedelta(days=1)).isoformat()},
            state={"rows": picked, "ignored_files": ignored, "inbox": inbox_url,
                   "new_files": new, "late_files": late, "redelivered_files": redelivered,
                   "already_landed": unchanged, "waiting_files": waiting,
                   "inbox_files": inbox_files},
        )
