"""Opening event sources for the commands: a file in any reader format, or generated sessions."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import NamedTuple

from producers.generator import GeneratorConfig, build_catalog, generate_sessions
from producers.ordering import time_ordered
from producers.readers import ReadReport, read_events
from stream.events import Event
from web.catalog import Catalog


class CountingIterator:
    """Counts what passes through, and its latest ts, so both are known once the input is
    exhausted."""

    def __init__(self, events: Iterable[Event]) -> None:
        self._events = iter(events)
        self.count = 0
        self.last_ts = 0

    def __iter__(self) -> Iterator[Event]:
        last = 0
        try:
            for event in self._events:
                self.count += 1
                if event.ts > last:
                    last = event.ts
                yield event
        finally:
            self.last_ts = last


class OrderedEvents(NamedTuple):
    events: Iterator[Event]
    total: int
    first_ts: int
    span_ms: int
    """Event time from the first event to the last."""


def ordered_file_events(path: Path, *, strict: bool = False) -> OrderedEvents:
    """A file's events in global time order, how many there are and the time they span.

    The external merge of :func:`producers.ordering.time_ordered` reads the whole input before
    its first event comes out, so the count (for a progress bar) is known by then, while
    memory stays bounded for files larger than RAM, and so is the time span.
    """
    report = ReadReport(path=path)
    counter = CountingIterator(read_events(path, strict=strict, report=report))
    ordered = time_ordered(counter)
    first = next(ordered, None)
    if report.bad:
        print(f"{path}: skipped {report.bad} bad line(s); first: {report.errors[0]}",
              file=sys.stderr)
    if first is None:
        return OrderedEvents(iter(()), 0, 0, 0)
    return OrderedEvents(chain((first,), ordered), counter.count, first.ts,
                         counter.last_ts - first.ts)


def generated_events(sessions: int, items: int, seed: int) -> list[Event]:
    """Synthetic OTTO-like events in global time order."""
    config = GeneratorConfig(sessions=sessions, items=items, seed=seed)
    flat = (event for _, session_events in generate_sessions(config) for event in session_events)
    return list(time_ordered(flat))


def generated_catalog(sessions: int, items: int, seed: int) -> Catalog:
    """Shop names whose categories follow the generator's item groups (see web.catalog)."""
    groups = build_catalog(GeneratorConfig(sessions=sessions, items=items, seed=seed)).category

    def category_of(aid: int) -> int | None:
        return int(groups[aid]) if 0 <= aid < len(groups) else None

    return Catalog(category_of)
