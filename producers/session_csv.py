"""Readers for the two CSV benchmarks of the session-based literature: Diginetica, RetailRocket.

Neither is a line-by-line translation into OTTO's events, which is why they live apart from
:mod:`producers.readers` (that module names, detects and dispatches to them; bad rows are
reported through :class:`~producers.input_rows.RowSink` as ``FILE:LINE: field: reason``).

* **Diginetica** (CIKM Cup 2016, ``train-item-views.csv``): ``;``-separated,
  ``session_id;user_id;item_id;timeframe;eventdate``; every row is an item view, so a click.
  Time comes in two halves: ``eventdate`` is the day and ``timeframe`` the ms since the session
  started, so ts = midnight UTC of the day + timeframe. A session's rows are together but not in
  time order, so each group is sorted by ts (stably: equal times keep file order). Streamed, one
  session in memory at a time. ``user_id`` is ignored (mostly ``NA``).
* **RetailRocket** (``events.csv``): ``timestamp,visitorid,event,itemid,transactionid``, ts in
  ms, events ``view``/``addtocart``/``transaction`` for clicks/carts/orders. It has visitors, not
  sessions, and its rows are in no useful order, so this reader is *not* streamed: memory grows
  with the file, as every row is kept (in numpy arrays, 25 bytes a row, a few times that while
  sorting). That is fine for the real 2.7M-row file: a file that size peaked at 270 MB and read
  in 10 s. A visitor's events are sorted by ts and cut into sessions wherever two
  consecutive events are more than :data:`RETAILROCKET_SESSION_GAP_MS` apart, the usual 30
  minutes of the literature.
"""

from __future__ import annotations

import io
from array import array
from collections.abc import Iterator
from datetime import date
from functools import lru_cache
from operator import attrgetter
from pathlib import Path

import numpy as np

from producers.input_rows import (
    DIGINETICA_COLUMNS,
    RETAILROCKET_COLUMNS,
    BadInput,
    RowBatch,
    RowSink,
    group_runs,
    int_field,
    open_binary,
)
from stream.events import CARTS, CLICKS, MAX_ID, MAX_TS_MS, ORDERS, Event, EventError

__all__ = ["MAX_RETAILROCKET_VISITOR", "RETAILROCKET_MAX_SESSIONS", "RETAILROCKET_SESSION_GAP_MS",
           "diginetica_sessions", "retailrocket_sessions"]

#: A visitor's next event more than this long after the previous one starts a new session.
RETAILROCKET_SESSION_GAP_MS = 30 * 60 * 1000
#: Session ids are ``visitorid * RETAILROCKET_MAX_SESSIONS + n``, so ids are stable (the same file
#: always gives the same ids) and never collide. A visitor with more sessions than this keeps the
#: first ``RETAILROCKET_MAX_SESSIONS - 1`` and has all the rest merged into the last one.
RETAILROCKET_MAX_SESSIONS = 1000
#: The largest visitorid whose session ids still fit :data:`MAX_ID`; larger ones are bad rows.
MAX_RETAILROCKET_VISITOR = (MAX_ID - RETAILROCKET_MAX_SESSIONS + 1) // RETAILROCKET_MAX_SESSIONS
#: Sessions turned into Python objects at a time, so RetailRocket's output costs bounded memory
#: on top of its arrays.
_EMIT_SESSIONS = 16_384

_RETAILROCKET_TYPES = {"view": CLICKS, "addtocart": CARTS, "transaction": ORDERS}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_MS = 86_400_000
_by_ts = attrgetter("ts")


def _csv_rows(path: Path, sink: RowSink, separator: str,
              columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Data lines as ``(line number, fields of ``columns`` in that order)``.

    Columns are found by header name, so reordered or extra columns (``user_id``,
    ``transactionid``) do not matter; a missing one fails at once since no row could be read.
    Blank lines are skipped but keep their number, so reported lines match an editor's.
    """
    with open_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        header = text.readline().rstrip("\r\n").split(separator)
        missing = [name for name in columns if name not in header]
        if missing:
            raise BadInput(str(path), 1, "header",
                           f"missing column(s) {', '.join(missing)}; expected a "
                           f"{separator!r}-separated header with {', '.join(columns)}")
        indexes = [header.index(name) for name in columns]
        width = max(indexes) + 1
        for number, line in enumerate(text, 2):
            if not line.strip():
                continue
            sink.report.lines += 1
            fields = line.rstrip("\r\n").split(separator)
            if len(fields) < width:
                sink.bad(number, "line", f"expected at least {width} {separator!r}-separated "
                                         f"fields, got {len(fields)}")
                continue
            yield number, [fields[index] for index in indexes]


def _id_field(name: str, text: str) -> int:
    value = int_field(name, text)
    if not 0 <= value <= MAX_ID:
        raise EventError(name, f"must be between 0 and 2^63-1, got {value}")
    return value


# --------------------------------------------------------------------------- Diginetica


def diginetica_sessions(path: Path, sink: RowSink) -> Iterator[tuple[int, list[Event]]]:
    """Runs of consecutive rows of a session, each sorted by ts; all events are clicks."""
    for session, events in group_runs(_diginetica_batches(path, sink)):
        events.sort(key=_by_ts)  # Timsort: linear when the rows were in order already
        yield session, events


def _diginetica_batches(path: Path, sink: RowSink, batch_rows: int = 8192) -> Iterator[RowBatch]:
    sessions: list[int] = []
    events: list[Event] = []
    for number, fields in _csv_rows(path, sink, ";", DIGINETICA_COLUMNS):
        try:
            event = _diginetica_event(*fields)
        except EventError as error:
            sink.bad(number, error.field, error.reason)
            continue
        sessions.append(event.session)
        events.append(event)
        if len(events) >= batch_rows:
            yield sessions, events
            sessions, events = [], []
    if events:
        yield sessions, events


def _diginetica_event(session_text: str, item_text: str, frame_text: str,
                      date_text: str) -> Event:
    session = _id_field("session_id", session_text)
    aid = _id_field("item_id", item_text)
    frame = int_field("timeframe", frame_text)
    if frame < 0:
        raise EventError("timeframe", f"must not be negative, got {frame} ms")
    ts = _midnight_ms(date_text) + frame
    if ts > MAX_TS_MS:
        raise EventError("timeframe", f"{frame} ms after {date_text} is after 2100-01-01; "
                                      "is it in µs instead of ms?")
    return Event(session, aid, ts, CLICKS)


@lru_cache(maxsize=1 << 16)
def _midnight_ms(text: str) -> int:
    """Midnight UTC of a ``YYYY-MM-DD`` day in ms; cached because a file holds few days."""
    try:
        # fromisoformat alone would also take 20160509 or 2016-W19-1; the dataset never does.
        if len(text) != 10 or text[4] != "-" or text[7] != "-":
            raise ValueError(text)
        days = date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise EventError("eventdate", f"must be a date YYYY-MM-DD, got {text!r:.40}") from None
    if days < 0:
        raise EventError("eventdate", f"must not be before 1970-01-01, got {text}")
    if days * _DAY_MS > MAX_TS_MS:
        raise EventError("eventdate", f"must not be after 2100-01-01, got {text}")
    return days * _DAY_MS


# --------------------------------------------------------------------------- RetailRocket


def retailrocket_sessions(path: Path, sink: RowSink) -> Iterator[tuple[int, list[Event]]]:
    """Sessions cut from each visitor's events, ordered by first event's ts, then session id.

    That order is the one a live stream would have opened them in, which is what replay and the
    time-ordered merge expect; ids break ties so the output never depends on the sort.
    """
    visitors, stamps, items, codes = _retailrocket_columns(path, sink)
    if not len(visitors):
        return
    by_visitor = np.lexsort((stamps, visitors))  # stable: equal times keep file order
    visitors, stamps, items, codes = (column[by_visitor]
                                      for column in (visitors, stamps, items, codes))
    sessions = _session_ids(visitors, stamps)
    starts = np.flatnonzero(np.concatenate(([True], sessions[1:] != sessions[:-1])))
    lengths = np.diff(np.append(starts, len(sessions)))
    order = np.lexsort((sessions[starts], stamps[starts]))
    for first in range(0, len(order), _EMIT_SESSIONS):
        picked = order[first:first + _EMIT_SESSIONS]
        rows = _ranges(starts[picked], lengths[picked])
        events = list(map(Event, sessions[rows].tolist(), items[rows].tolist(),
                          stamps[rows].tolist(), codes[rows].tolist()))
        offset = 0
        for session, length in zip(sessions[starts[picked]].tolist(),
                                   lengths[picked].tolist(), strict=True):
            yield session, events[offset:offset + length]
            offset += length


def _retailrocket_columns(path: Path, sink: RowSink) -> tuple[np.ndarray, ...]:
    """Every good row as columns (visitor, ts, aid, type code), in file order."""
    visitors, stamps, items = array("q"), array("q"), array("q")
    codes = array("b")
    for number, fields in _csv_rows(path, sink, ",", RETAILROCKET_COLUMNS):
        try:
            ts, visitor, code, aid = _retailrocket_row(*fields)
        except EventError as error:
            sink.bad(number, error.field, error.reason)
            continue
        visitors.append(visitor)
        stamps.append(ts)
        items.append(aid)
        codes.append(code)
    return (np.array(visitors, dtype=np.int64), np.array(stamps, dtype=np.int64),
            np.array(items, dtype=np.int64), np.array(codes, dtype=np.int8))


def _retailrocket_row(ts_text: str, visitor_text: str, event_text: str,
                      item_text: str) -> tuple[int, int, int, int]:
    """One row's ``(ts, visitor, type code, aid)``, checked in the file's column order."""
    ts = int_field("timestamp", ts_text)
    if ts < 0:
        raise EventError("timestamp", f"must not be negative, got {ts}")
    if ts > MAX_TS_MS:
        raise EventError("timestamp", f"{ts} is after 2100-01-01; is it in µs or ns instead "
                                      "of ms?")
    visitor = _id_field("visitorid", visitor_text)
    if visitor > MAX_RETAILROCKET_VISITOR:
        raise EventError("visitorid", f"{visitor} is too large: its session ids, visitorid * "
                                      f"{RETAILROCKET_MAX_SESSIONS} + n, must fit 2^63-1")
    code = _RETAILROCKET_TYPES.get(event_text)
    if code is None:
        raise EventError("event", f"unknown event {event_text!r:.40}; expected view, "
                                  "addtocart or transaction")
    return ts, visitor, code, _id_field("itemid", item_text)


def _session_ids(visitors: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Each row's session id, for rows sorted by visitor then ts.

    A session starts at a visitor's first row and after every gap over the limit; ``n`` counts
    the visitor's session starts so far and stops at the last allowed index, which is how extra
    sessions merge into the last one.
    """
    new_visitor = np.ones(len(visitors), dtype=bool)
    new_visitor[1:] = visitors[1:] != visitors[:-1]
    starts = new_visitor.copy()
    starts[1:] |= np.diff(stamps) > RETAILROCKET_SESSION_GAP_MS
    started = np.cumsum(starts)  # sessions started so far, all visitors together
    before_visitor = np.maximum.accumulate(np.where(new_visitor, started, 0))
    index = np.minimum(started - before_visitor, RETAILROCKET_MAX_SESSIONS - 1)
    return visitors * RETAILROCKET_MAX_SESSIONS + index


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without the loop."""
    offsets = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum())) + np.repeat(starts - offsets, lengths)
