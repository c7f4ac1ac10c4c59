"""CSV records read the way PostgreSQL's COPY reads them (format csv, default quoting).

Python's csv module cannot tell a quoted empty field from an unquoted one; COPY can: an
unquoted empty field is NULL, a quoted one ("") is an empty string. The raw loader's
row-by-row path reads files with this module so a file loads the same whichever path it
takes, and the landing zone counts a delivered file's rows with it so both agree on where
one record ends: a double quote opens a quoted section anywhere in a field, as in COPY.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

_FIELD = re.compile(r'(?:[^,"]+|"(?:[^"]|"")*")*')
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that surrogateescape could not decode


class Record(NamedTuple):
    line: int  # the line the record starts on, counting from 1
    fields: list[str | None]
    problem: str | None  # why the record cannot be read as fields, else None
    text: str  # the record as it stood in the file, without its line end


def records(lines: Iterable[str]) -> Iterator[Record]:
    """The records of CSV text given line by line, each line with its own line end (open
    text with newline="" and, for undecodable bytes, errors="surrogateescape")."""
    pending: list[str] = []
    quotes = 0
    start = 0
    for number, line in enumerate(lines, 1):
        if not pending:
            start = number
        pending.append(line)
        quotes += line.count('"')
        if quotes % 2:  # inside a quoted field: the record goes on past this line end
            continue
        yield _split(start, _without_line_end("".join(pending)))
        pending, quotes = [], 0
    if pending:
        yield Record(start, [], "a quoted field is never closed (the file ends inside it)",
                     _without_line_end("".join(pending)))


def _without_line_end(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith(("\n", "\r")):
        return text[:-1]
    return text


def _split(line: int, text: str) -> Record:
    if bad := _NOT_UTF8.search(text):
        offset = len(text[:bad.start()].encode("utf-8", "surrogateescape"))
        return Record(line, [], f"encoding error: byte 0x{ord(bad.group()) - 0xDC00:02x} "
                                f"at byte {offset} of the line is not valid UTF-8", text)
    fields: list[str | None] = []
    pos = 0
    while True:
        match = _FIELD.match(text, pos)
        raw = match.group() if match else ""
        if '"' in raw:
            fields.append(_QUOTED.sub(lambda m: m[1].replace('""', '"'), raw))
        else:
            fields.append(raw or None)
        pos += len(raw)
        if pos == len(text):
            return Record(line, fields, None, text)
        if text[pos] != ",":
            return Record(line, [], f"unbalanced double quote at character {pos + 1}", text)
        pos += 1
