"""The landing zone: immutable extract files per source and logical date, plus a manifest.

Layout, one batch per source and logical date::

    <landing>/<source>/<YYYY-MM-DD>/_manifest.json
    <landing>/<source>/<YYYY-MM-DD>/v<UTC stamp>-<short uuid>/<entity>[.<part>].csv

The landing root is a local path or any fsspec URL (``s3://bucket/prefix`` with s3fs).

Landing is atomic per batch. An extract writes its files into a new version folder
(``v20260511T031502Z-1a2b3c4d``) inside the batch's date folder and commits the batch by
writing the manifest last: a temporary file moved into place (on object stores, where a
single put is atomic, one put). The manifest's ``folder`` names the version folder that
holds the batch's files, and readers (`LandingBatch.file_url`, `LandingBatch.open_file`)
resolve file names through it, so they see the committed files and never a half-written
version. After a commit the previous version's files and any version folder the manifest
does not name (left by a crashed extract) are removed. An extract that fails before its
commit removes its partial version folder: the committed batch stays byte for byte as it
was, and a day that had none stays without a manifest and is extracted again. A batch is
committed when it has a manifest; a committed batch is only replaced when forced.

Batches landed before version folders existed have their files directly in the date
folder and a manifest without ``folder``; they read as before, and their next forced
re-extract replaces them with a version folder. `LandingBatch.reset` still writes that
way (it deletes the whole batch first), for tools and tests that build a batch by hand.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, BinaryIO

import fsspec

from defection_warehouse.sources.contracts import Entity
from defection_warehouse.sources.csv_records import records

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
CHUNK = 1 << 20
# Object stores write an object in one put, atomically: no temporary file to move.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


class LandingError(RuntimeError):
    """A landing batch is missing, incomplete or does not match its manifest."""


@dataclass
class LandedFile:
    entity: str
    file: str  # name inside the batch's folder
    rows: int
    bytes: int
    sha256: str
    origin: str | None = None  # where the bytes came from, for files copied as they are


@dataclass
class Manifest:
    source: str
    logical_date: str
    extract_window: dict[str, str | None]
    extracted_at: str
    files: list[LandedFile]
    schema: dict[str, list[dict[str, str]]]
    state: dict[str, Any] = field(default_factory=dict)
    # The version folder (inside the date folder) holding the files; None: the files sit
    # directly in the date folder (batches landed before version folders, or `reset`).
    folder: str | None = None

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        raw["files"] = [LandedFile(**f) for f in raw["files"]]
        folder = raw.get("folder")
        if folder is not None and (not isinstance(folder, str) or folder in ("", ".", "..")
                                   or "/" in folder or "\\" in folder):
            raise LandingError(f"manifest names {folder!r} as its folder: not a folder name")
        return cls(**raw)

    def to_json(self) -> str:
        raw = asdict(self)
        if raw["folder"] is None:  # the old layout's manifest, unchanged
            del raw["folder"]
        return json.dumps(raw, indent=2, sort_keys=True)

    def files_for(self, entity: str) -> list[LandedFile]:
        return [f for f in self.files if f.entity == entity]

    @property
    def total_rows(self) -> int:
        return sum(f.rows for f in self.files)


def csv_value(value: Any) -> Any:
    """Render a Python value the way PostgreSQL's CSV COPY reads it back."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: landing timestamps carry a zone")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


class _Sink(io.RawIOBase):
    """Binary sink that counts and hashes what passes through to a landing file."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self.sha = hashlib.sha256()
        self.size = 0
        self.rows = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self._target.write(b)
        self.sha.update(b)
        self.size += len(b)
        return len(b)


class EntityWriter:
    def __init__(self, text: io.TextIOWrapper, columns: Sequence[str]) -> None:
        self._csv = csv.writer(text, lineterminator="\n")
        self._csv.writerow(columns)
        self._width = len(columns)
        self.rows = 0

    def write_row(self, row: Sequence[Any]) -> None:
        if len(row) != self._width:
            raise ValueError(f"row has {len(row)} values, expected {self._width}")
        self._csv.writerow([csv_value(v) for v in row])
        self.rows += 1

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.write_row(row)


def _version_name() -> str:
    """A fresh version folder name: UTC stamp (sorts by time) and a short random suffix."""
    return f"v{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class LandingBatch:
    def __init__(self, zone: LandingZone, source: str, logical_date: date) -> None:
        self.zone = zone
        self.source = source
        self.logical_date = logical_date
        self.url = f"{zone.root}/{source}/{logical_date.isoformat()}"  # the date folder
        self._files: list[LandedFile] = []
        # Where new files go: None before writing starts, a version folder's name, or ""
        # for the date folder itself (after `reset`).
        self._target: str | None = None
        self._committed: Manifest | None = None  # the manifest readers resolve names by

    # -- reading -------------------------------------------------------------------
    def exists(self) -> bool:
        return self.zone.fs.exists(f"{self.url}/{MANIFEST}")

    def manifest(self) -> Manifest:
        try:
            with self.zone.fs.open(f"{self.url}/{MANIFEST}", "r", encoding="utf-8") as f:
                manifest = Manifest.from_json(f.read())
        except FileNotFoundError as exc:
            raise LandingError(
                f"no committed landing batch for {self.source} {self.logical_date} "
                f"at {self.url} (run the extract first)"
            ) from exc
        self._committed = manifest
        return manifest

    def folder_url(self) -> str:
        """The folder holding the committed files: the version folder the manifest names
        (the manifest last read through this object, else the committed one)."""
        manifest = self._committed or self.manifest()
        return f"{self.url}/{manifest.folder}" if manifest.folder else self.url

    def file_url(self, name: str) -> str:
        return f"{self.folder_url()}/{name}"

    @contextmanager
    def open_file(self, name: str) -> Iterator[BinaryIO]:
        with self.zone.fs.open(self.file_url(name), "rb") as f:
            yield f

    # -- writing -------------------------------------------------------------------
    def begin(self) -> str:
        """Start a new version of the batch in a fresh version folder (returned); the
        committed batch, if any, stays as it is until `commit`."""
        if self._target:
            self.discard()
        self._target = _version_name()
        self._files = []
        url = self._write_base()
        self.zone.fs.makedirs(url, exist_ok=True)
        return url

    def discard(self) -> None:
        """Drop the version being written: its folder is removed, the committed batch is
        left as it was."""
        target, self._target, self._files = self._target, None, []
        if not target:  # never the date folder itself
            return
        try:
            committed = self.manifest().folder if self.exists() else None
        except Exception as exc:  # unsure what is committed: the next commit cleans up
            log.warning("%s: left version %s in place, the manifest is unreadable: %s",
                        self.url, target, exc)
            return
        if committed == target:  # its manifest landed after all (e.g. a put that timed out)
            return
        url = f"{self.url}/{target}"
        if self.zone.fs.exists(url):
            self.zone.fs.rm(url, recursive=True)

    def reset(self) -> None:
        """Delete the whole batch, committed or not, and write the next files directly
        into the date folder (the layout before version folders). Not atomic: extracts
        use `new_version`; this is for tools and tests that build a batch by hand."""
        if self.zone.fs.exists(self.url):
            self.zone.fs.rm(self.url, recursive=True)
        self._target = ""
        self._files = []
        self._committed = None

    @contextmanager
    def new_version(self, say: Callable[[str], None]) -> Iterator[LandingBatch]:
        """Write a new version of the batch and `commit` it inside the block.

        If the block fails, its partial version folder is removed, the committed batch
        (if any) stays byte for byte as it was, `say` is told so, and the error goes on.
        """
        self.begin()
        try:
            yield self
        except BaseException as exc:
            try:
                self.discard()
            except Exception as cleanup:  # keep the extract's error, not the cleanup's
                log.warning("%s: could not remove the partial version folder: %s",
                            self.url, cleanup)
            say(self._kept_message(exc))
            raise
        if self._target is not None:  # the block ended without a commit
            self.discard()

    def _kept_message(self, exc: BaseException) -> str:
        head = (f"{self.source} {self.logical_date}: extract failed "
                f"({type(exc).__name__}) and was discarded")
        try:
            manifest = self.manifest() if self.exists() else None
        except Exception:
            return f"{head}; the committed batch, if any, was kept unchanged"
        if manifest is None:
            return f"{head}; no batch is committed for the day, the next run extracts it"
        return (f"{head}; the previous committed batch (extracted {manifest.extracted_at}, "
                f"{manifest.total_rows} rows) was kept unchanged")

    def _write_base(self) -> str:
        if self._target is None:
            self.begin()
        return f"{self.url}/{self._target}" if self._target else self.url

    @contextmanager
    def stream(self, entity: Entity, name: str | None = None) -> Iterator[_Sink]:
        """Write a CSV file as bytes; the caller sets `rows` before the block ends."""
        name = name or f"{entity.name}.csv"
        base = self._write_base()
        self.zone.fs.makedirs(base, exist_ok=True)
        with self.zone.fs.open(f"{base}/{name}", "wb") as raw:
            sink = _Sink(raw)
            yield sink
        self._files.append(LandedFile(entity.name, name, sink.rows, sink.size,
                                      sink.sha.hexdigest()))

    @contextmanager
    def writer(self, entity: Entity, name: str | None = None) -> Iterator[EntityWriter]:
        """Write a CSV file row by row (values rendered as PostgreSQL reads them)."""
        with self.stream(entity, name) as sink:
            buffered = io.BufferedWriter(sink, buffer_size=CHUNK)
            text = io.TextIOWrapper(buffered, encoding="utf-8", newline="")
            writer = EntityWriter(text, entity.column_names)
            yield writer
            text.flush()
            buffered.flush()
            sink.rows = writer.rows

    def add_copy(self, entity: Entity, origin_url: str, fs: Any, name: str) -> LandedFile:
        """Copy a source file byte for byte (survey exports are landed as delivered)."""
        with self.stream(entity, name) as sink, fs.open(origin_url, "rb") as src:
            while chunk := src.read(CHUNK):
                sink.write(chunk)
        landed = self._files[-1]
        landed.origin = origin_url
        with self.zone.fs.open(f"{self._write_base()}/{name}", "rb") as f:
            text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
            # counted as the loader reads it, so both agree where each record ends
            landed.rows = max(sum(1 for _ in records(text)) - 1, 0)
        return landed

    def commit(
        self,
        entities: Sequence[Entity],
        extract_window: dict[str, str | None],
        state: dict[str, Any] | None = None,
    ) -> Manifest:
        """Commit the files written since `begin` (or `reset`): the manifest is written
        last, atomically; then earlier versions' files are removed."""
        base = self._write_base()  # a day without files (no survey export) commits too
        self._check_written(base)
        manifest = Manifest(
            source=self.source,
            logical_date=self.logical_date.isoformat(),
            extract_window=extract_window,
            extracted_at=datetime.now(UTC).isoformat(timespec="seconds"),
            files=sorted(self._files, key=lambda f: (f.entity, f.file)),
            schema={e.name: [{"name": c.name, "type": c.type} for c in e.columns]
                    for e in entities},
            state=state or {},
            folder=self._target or None,
        )
        self.zone.fs.makedirs(self.url, exist_ok=True)
        self._write_manifest(manifest.to_json().encode("utf-8"))
        self._target, self._files, self._committed = None, [], manifest
        self._remove_stale(manifest)
        return manifest

    def _check_written(self, base: str) -> None:
        """Every file written is still there with its size (a concurrent extract of the
        same batch could have removed the folder): never commit a manifest that lies."""
        if not self._files:
            return
        fs = self.zone.fs
        fs.invalidate_cache(base)
        try:
            listed = {_basename(e["name"]): e.get("size") for e in fs.ls(base, detail=True)}
        except FileNotFoundError:
            listed = {}
        for f in self._files:
            if f.file not in listed or listed[f.file] not in (None, f.bytes):
                raise LandingError(
                    f"{base}/{f.file}: written with {f.bytes} bytes but "
                    f"{'missing' if f.file not in listed else f'{listed[f.file]} bytes'} "
                    "before the commit (another extract of the same batch running?)")

    def _write_manifest(self, data: bytes) -> None:
        fs, path = self.zone.fs, f"{self.url}/{MANIFEST}"
        if self.zone.protocol in OBJECT_STORES:
            fs.pipe_file(path, data)
            return
        temporary = f"{self.url}/.{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with fs.open(temporary, "wb") as f:
                f.write(data)
            fs.mv(temporary, path)
        except BaseException:
            try:
                if fs.exists(temporary):
                    fs.rm(temporary)
            except Exception as exc:
                log.warning("%s: could not remove %s: %s", self.url, temporary, exc)
            raise

    def _remove_stale(self, manifest: Manifest) -> None:
        """Remove everything in the date folder that the committed manifest does not use:
        the previous version (a version folder, or files of the old layout) and version
        folders of extracts that crashed. Best effort: the commit already stands."""
        keep = {MANIFEST, *([manifest.folder] if manifest.folder
                            else [f.file for f in manifest.files])}
        fs = self.zone.fs
        try:
            fs.invalidate_cache(self.url)
            stale = [p for p in fs.ls(self.url, detail=False) if _basename(p) not in keep]
            for path in stale:
                fs.rm(path, recursive=True)
        except Exception as exc:
            log.warning("%s: committed, but earlier versions' files could not be removed "
                        "(%s); the next commit of the batch removes them", self.url, exc)


class LandingZone:
    def __init__(self, root: str) -> None:
        self.fs, path = fsspec.core.url_to_fs(root)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.protocol = protocol
        self.root = path.rstrip("/") if protocol in ("file", "local") else f"{protocol}://{path}"
        if protocol in ("file", "local"):
            self.fs.makedirs(self.root, exist_ok=True)

    def batch(self, source: str, logical_date: date) -> LandingBatch:
        return LandingBatch(self, source, logical_date)

    def committed_dates(self, source: str) -> list[date]:
        base = f"{self.root}/{source}"
        if not self.fs.exists(base):
            return []
        found = []
        for entry in self.fs.ls(base, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            try:
                day = date.fromisoformat(name)
            except ValueError:
                continue
            if self.fs.exists(f"{base}/{name}/{MANIFEST}"):
                found.append(day)
        return sorted(found)

    def previous_batch(self, source: str, before: date) -> LandingBatch | None:
        """The latest committed batch of `source` dated before `before`."""
        earlier = [d for d in self.committed_dates(source) if d < before]
        return self.batch(source, earlier[-1]) if earlier else None
