"""What every session-file reader shares: the columns it looks for, how a bad row is
reported (:class:`RowSink`), how a file is opened and how rows become session groups.

:mod:`producers.readers` (OTTO, TSV, parquet and the dispatch) and :mod:`producers.session_csv`
(Diginetica, RetailRocket) both build on this module, so neither imports the other's insides.
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from stream.events import Event, EventError

#: A report keeps this many messages; the count in ``bad`` goes on past it.
MAX_REPORTED_ERRORS = 20
#: Columns of the TSV header we need; any others are ignored.
TSV_COLUMNS = ("SessionId", "ItemId", "Time")
#: Columns of Diginetica's ``;``-separated header we need (``user_id`` is ignored).
DIGINETICA_COLUMNS = ("session_id", "item_id", "timeframe", "eventdate")
#: Columns of RetailRocket's ``events.csv`` header we need (``transactionid`` is ignored).
RETAILROCKET_COLUMNS = ("timestamp", "visitorid", "event", "itemid")
_GZIP_MAGIC = b"\x1f\x8b"

log = logging.getLogger("liverec.producers")


class BadInput(ValueError):
    """A line or row that cannot become events, in strict mode: ``FILE:LINE: field: reason``."""

    def __init__(self, file: str, line: int, field: str, reason: str) -> None:
        super().__init__(f"{file}:{line}: {field}: {reason}")
        self.file = file
        self.line = line
        self.field = field
        self.reason = reason


@dataclass
class ReadReport:
    """What a read saw; pass one in and read it afterwards (the reader fills it in as it goes).

    ``lines`` counts data lines (jsonl, TSV, CSV; without header and blank lines) or rows
    (parquet), ``bad`` those skipped, ``errors`` the first :data:`MAX_REPORTED_ERRORS` messages.
    """

    path: Path | None = None
    lines: int = 0
    events: int = 0
    sessions: int = 0
    bad: int = 0
    errors: list[str] = field(default_factory=list)


class RowSink:
    """Reports one bad line the same way everywhere: log, count, keep, or raise when strict."""

    def __init__(self, path: Path, strict: bool, report: ReadReport) -> None:
        self.file = str(path)
        self.strict = strict
        self.report = report

    def bad(self, line: int, field: str, reason: str) -> None:
        if self.strict:
            raise BadInput(self.file, line, field, reason)
        message = f"{self.file}:{line}: {field}: {reason}"
        log.warning("%s", message)
        self.report.bad += 1
        if len(self.report.errors) < MAX_REPORTED_ERRORS:
            self.report.errors.append(message)


def open_binary(path: Path) -> IO[bytes]:
    """Open plain or gzipped by the magic bytes, not the name, so renamed files still read."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == _GZIP_MAGIC
    if gzipped:
        return io.BufferedReader(gzip.GzipFile(path, "rb"), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


#: A batch of validated rows: session ids and the matching events, same length.
RowBatch = tuple[list[int], list[Event]]


def group_runs(batches: Iterator[RowBatch]) -> Iterator[tuple[int, list[Event]]]:
    """Group consecutive rows with the same session id, across batch boundaries."""
    current = -1  # no session id is negative
    group: list[Event] = []
    for sessions, events in batches:
        start = 0
        for i in range(1, len(sessions) + 1):
            if i == len(sessions) or sessions[i] != sessions[start]:
                run = events[start:i]
                if sessions[start] == current:
                    group.extend(run)
                else:
                    if group:
                        yield current, group
                    current, group = sessions[start], run
                start = i
    if group:
        yield current, group


def int_field(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise EventError(name, f"must be an integer, got {text!r:.40}") from None
