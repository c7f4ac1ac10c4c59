"""The landing zone: immutable extract files per source and logical date, plus a manifest.

Layout: ``<landing>/<source>/<YYYY-MM-DD>/<entity>[.<part>].csv`` and ``_manifest.json``.
The landing root is a local path or any fsspec URL (``s3://bucket/prefix`` with s3fs).
A batch is committed by writing its manifest last, so a crashed extract leaves no manifest
and is redone; a committed batch is never rewritten unless explicitly forced.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, BinaryIO

import fsspec

from defection_warehouse.contracts import Entity

MANIFEST = "_manifest.json"
CHUNK = 1 << 20


class LandingError(RuntimeError):
    """A landing batch is missing, incomplete or does not match its manifest."""


@dataclass
class LandedFile:
    entity: str
    file: str  # name inside the batch folder
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

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        raw["files"] = [LandedFile(**f) for f in raw["files"]]
        return cls(**raw)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

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


class LandingBatch:
    def __init__(self, zone: LandingZone, source: str, logical_date: date) -> None:
        self.zone = zone
        self.source = source
        self.logical_date = logical_date
        self.url = f"{zone.root}/{source}/{logical_date.isoformat()}"
        self._files: list[LandedFile] = []

    # -- reading -------------------------------------------------------------------
    def exists(self) -> bool:
        return self.zone.fs.exists(f"{self.url}/{MANIFEST}")

    def manifest(self) -> Manifest:
        try:
            with self.zone.fs.open(f"{self.url}/{MANIFEST}", "r", encoding="utf-8") as f:
                return Manifest.from_json(f.read())
        except FileNotFoundError as exc:
            raise LandingError(
                f"no committed landing batch for {self.source} {self.logical_date} "
                f"at {self.url} (run the extract first)"
            ) from exc

    def file_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    @contextmanager
    def open_file(self, name: str) -> Iterator[BinaryIO]:
        with self.zone.fs.open(self.file_url(name), "rb") as f:
            yield f

    # -- writing -------------------------------------------------------------------
    def reset(self) -> None:
        """Forget a half-written batch (no manifest yet) or a forced redo."""
        if self.zone.fs.exists(self.url):
            self.zone.fs.rm(self.url, recursive=True)
        self._files = []

    @contextmanager
    def stream(self, entity: Entity, name: str | None = None) -> Iterator[_Sink]:
        """Write a CSV file as bytes; the caller sets `rows` before the block ends."""
        name = name or f"{entity.name}.csv"
        self.zone.fs.makedirs(self.url, exist_ok=True)
        with self.zone.fs.open(self.file_url(name), "wb") as raw:
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
        with self.open_file(name) as f:
            text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
            landed.rows = max(sum(1 for _ in csv.reader(text)) - 1, 0)
        return landed

    def commit(
        self,
        entities: Sequence[Entity],
        extract_window: dict[str, str | None],
        state: dict[str, Any] | None = None,
    ) -> Manifest:
        manifest = Manifest(
            source=self.source,
            logical_date=self.logical_date.isoformat(),
            extract_window=extract_window,
            extracted_at=datetime.now(UTC).isoformat(timespec="seconds"),
            files=sorted(self._files, key=lambda f: (f.entity, f.file)),
            schema={e.name: [{"name": c.name, "type": c.type} for c in e.columns]
                    for e in entities},
            state=state or {},
        )
        # a day without files (e.g. no survey export) still gets its empty batch
        self.zone.fs.makedirs(self.url, exist_ok=True)
        with self.zone.fs.open(f"{self.url}/{MANIFEST}", "w", encoding="utf-8") as f:
            f.write(manifest.to_json())
        return manifest


class LandingZone:
    def __init__(self, root: str) -> None:
        self.fs, path = fsspec.core.url_to_fs(root)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
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
