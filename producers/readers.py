"""Readers that turn every supported session file into the same stream of :class:`Event`.

Five on-disk shapes reach us: OTTO's jsonl (one session per line, ts in ms, type names, often
gzipped), the Kaggle parquet variant (one row per event, ts in *seconds*, type codes), the
session TSV of the session-based literature (``SessionId, ItemId, Time`` in seconds, all
clicks), and two CSV benchmarks read by :mod:`producers.session_csv`: Diginetica's item views
(day + ms into the session) and RetailRocket's visitor events (sessions cut by 30-minute gaps).
Everything downstream (replay, evaluation, stats) must not care which one it was given, so each
reader yields ``(session, [Event, ...])`` groups with ts in ms and type codes.

Files are streamed: jsonl, TSV and Diginetica line by line, parquet batch by batch, so a 10 GB
training file is read in constant memory; only RetailRocket, whose visitors' rows are scattered
over the file, is held whole. A bad line or row is never fatal by default: it is logged as
``FILE:LINE: field: reason`` on the ``liverec.producers`` logger, counted in a
:class:`ReadReport` and skipped whole (a session line with one bad event is dropped entirely,
because a session with a hole in it would teach the models a sequence that never happened).
``strict=True`` turns the first bad line into a :class:`BadInput` instead, for tests and for
data you expect to be clean.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from producers.input_rows import (
    DIGINETICA_COLUMNS,
    MAX_REPORTED_ERRORS,
    RETAILROCKET_COLUMNS,
    TSV_COLUMNS,
    BadInput,
    ReadReport,
    RowBatch,
    RowSink,
    group_runs,
    int_field,
    open_binary,
)
from producers.session_csv import diginetica_sessions, retailrocket_sessions
from stream.events import CLICKS, MAX_ID, MAX_TS_MS, TYPE_CODES, Event, EventError, parse_event

__all__ = ["FORMATS", "MAX_REPORTED_ERRORS", "BadInput", "ReadReport", "detect_format",
           "read_events", "read_sessions"]

FORMATS = ("otto-jsonl", "otto-parquet", "session-tsv", "diginetica", "retailrocket")
#: Parquet rows converted to Python objects at a time: big enough to amortise numpy calls,
#: small enough that memory stays flat.
PARQUET_BATCH_ROWS = 65_536
#: Header-detected formats: name, separator, columns that must all be in the first line.
_HEADERS = (("session-tsv", b"\t", TSV_COLUMNS), ("diginetica", b";", DIGINETICA_COLUMNS),
            ("retailrocket", b",", RETAILROCKET_COLUMNS))

_PARQUET_MAGIC = b"PAR1"
_SUFFIX_FORMATS = {".jsonl": "otto-jsonl", ".json": "otto-jsonl", ".parquet": "otto-parquet",
                   ".pq": "otto-parquet", ".tsv": "session-tsv"}

log = logging.getLogger("liverec.producers")


def _head(path: Path, size: int = 4096) -> bytes:
    """First bytes of the file's content, decompressed if it is gzipped."""
    with open_binary(path) as content:
        try:
            return content.read(size)
        except (OSError, EOFError):  # a truncated or corrupt gzip
            return b""


def detect_format(path: Path) -> str:
    """Name the format of ``path`` (one of :data:`FORMATS`) from its content, else its suffix.

    Content wins because downloaded files are often renamed: parquet by its ``PAR1`` magic,
    jsonl by a leading ``{``, the TSV and the two CSVs by their header (see ``_HEADERS``), so a
    ``.csv`` suffix, which both CSVs share, is never needed; gzip is looked through. Raises
    :class:`FileNotFoundError` or :class:`ValueError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such event file: {path}")
    head = _head(path)
    if head.startswith(_PARQUET_MAGIC):
        return "otto-parquet"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"{"):
        return "otto-jsonl"
    first_line = text.split(b"\n", 1)[0].rstrip(b"\r")
    for fmt, separator, columns in _HEADERS:
        if all(column.encode() in first_line.split(separator) for column in columns):
            return fmt
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffixes[-1]]
    raise ValueError(
        f"{path}: unknown event file format; expected one of {', '.join(FORMATS)} "
        "(OTTO jsonl sessions, Kaggle parquet with session/aid/ts/type columns, a "
        "tab-separated file with a SessionId, ItemId, Time header, Diginetica's "
        "train-item-views.csv or RetailRocket's events.csv)"
    )


def read_sessions(path: Path | str, fmt: str | None = None, *, strict: bool = False,
                  report: ReadReport | None = None) -> Iterator[tuple[int, list[Event]]]:
    """Yield ``(session, events)`` from ``path`` in file order, ts in ms, types as codes.

    Row-per-event formats (TSV, parquet, Diginetica) are grouped by runs of *consecutive* rows
    with the same session id; a session split across the file comes out as two groups, and
    Diginetica's groups are sorted by ts. RetailRocket's sessions are built per visitor and come
    out in order of their first event (:mod:`producers.session_csv`). The file and format are
    checked now, so a missing file fails at the call, not at the first ``next``.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"no such event file: {path}")
    report = report if report is not None else ReadReport()
    report.path = path
    sink = RowSink(path, strict, report)
    if fmt == "otto-jsonl":
        return _counted(_jsonl_sessions(path, sink), report)
    if fmt == "otto-parquet":
        return _counted(group_runs(_parquet_batches(path, sink)), report)
    if fmt in ("diginetica", "retailrocket"):
        reader = diginetica_sessions if fmt == "diginetica" else retailrocket_sessions
        return _counted(reader(path, sink), report)
    return _counted(group_runs(_tsv_batches(path, sink)), report)


def read_events(path: Path | str, fmt: str | None = None, *, strict: bool = False,
                report: ReadReport | None = None) -> Iterator[Event]:
    """Every event of ``path`` in file order: :func:`read_sessions` flattened."""
    sessions = read_sessions(path, fmt, strict=strict, report=report)
    return chain.from_iterable(events for _, events in sessions)


def _counted(sessions: Iterator[tuple[int, list[Event]]],
             report: ReadReport) -> Iterator[tuple[int, list[Event]]]:
    for session, events in sessions:
        report.sessions += 1
        report.events += len(events)
        yield session, events


# --------------------------------------------------------------------------- OTTO jsonl


def _jsonl_sessions(path: Path, sink: RowSink) -> Iterator[tuple[int, list[Event]]]:
    with open_binary(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            sink.report.lines += 1
            try:
                session, events = _parse_session_line(line)
            except EventError as error:
                sink.bad(number, error.field, error.reason)
                continue
            if events:
                yield session, events


def _parse_session_line(line: bytes) -> tuple[int, list[Event]]:
    """One OTTO line to events; raises :class:`EventError` naming the first bad field.

    Well-formed events take a fast inline check; anything unusual goes through
    :func:`parse_event` so the rules and messages are the ones the rest of liverec uses.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise EventError("line", f"not valid JSON ({error})") from None
    if not isinstance(obj, dict):
        raise EventError("line", f"must be a JSON object, got {type(obj).__name__}")
    if "events" not in obj:
        raise EventError("events", "missing")
    raw_events = obj["events"]
    if not isinstance(raw_events, list):
        raise EventError("events", f"must be a list, got {type(raw_events).__name__}")
    if "session" not in obj:
        raise EventError("session", "missing")
    session = obj["session"]
    if type(session) is not int or not 0 <= session <= MAX_ID:
        # Not a plain id: let the shared validation say why (it raises).
        session = parse_event({"session": session, "aid": 0, "ts": 0, "type": 0}).session
    events: list[Event] = []
    append, new = events.append, tuple.__new__
    for index, raw in enumerate(raw_events):
        if type(raw) is dict:
            aid, ts, name = raw.get("aid"), raw.get("ts"), raw.get("type")
            code = TYPE_CODES.get(name) if type(name) is str else None
            if (type(aid) is int and type(ts) is int and code is not None
                    and 0 <= aid <= MAX_ID and 0 <= ts <= MAX_TS_MS):
                append(new(Event, (session, aid, ts, code)))  # Event(...), faster
                continue
        try:
            event = parse_event({**raw, "session": session} if isinstance(raw, dict) else raw)
        except EventError as error:
            raise EventError(f"events[{index}].{error.field}", error.reason) from None
        append(event)
    return session, events


# --------------------------------------------------------------------------- row formats

def _tsv_batches(path: Path, sink: RowSink, batch_rows: int = 8192) -> Iterator[RowBatch]:
    with open_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        header = text.readline().rstrip("\r\n").split("\t")
        missing = [name for name in TSV_COLUMNS if name not in header]
        if missing:
            raise BadInput(str(path), 1, "header",
                           f"missing column(s) {', '.join(missing)}; expected a tab-separated "
                           f"header with {', '.join(TSV_COLUMNS)}")
        s_col, i_col, t_col = (header.index(name) for name in TSV_COLUMNS)
        width = max(s_col, i_col, t_col) + 1
        sessions: list[int] = []
        events: list[Event] = []
        for number, line in enumerate(text, 2):
            if not line.strip():
                continue
            sink.report.lines += 1
            fields = line.rstrip("\r\n").split("\t")
            try:
                if len(fields) < width:
                    raise EventError("line", f"expected at least {width} tab-separated fields, "
                                             f"got {len(fields)}")
                event = _tsv_event(fields[s_col], fields[i_col], fields[t_col])
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


def _tsv_event(session_text: str, item_text: str, time_text: str) -> Event:
    session = int_field("SessionId", session_text)
    aid = int_field("ItemId", item_text)
    try:
        seconds = float(time_text)
    except ValueError:
        raise EventError("Time", f"must be a number of seconds, got {time_text!r:.40}") from None
    if not math.isfinite(seconds):
        raise EventError("Time", f"must be a finite number of seconds, got {time_text!r:.40}")
    ts = round(seconds * 1000)
    if 0 <= session <= MAX_ID and 0 <= aid <= MAX_ID and 0 <= ts <= MAX_TS_MS:
        return Event(session, aid, ts, CLICKS)
    if ts > MAX_TS_MS:
        raise EventError("Time", f"{time_text} s is after 2100-01-01; is it in ms, not seconds?")
    try:
        return parse_event({"session": session, "aid": aid, "ts": ts, "type": CLICKS})
    except EventError as error:
        name = {"session": "SessionId", "aid": "ItemId", "ts": "Time"}.get(error.field)
        raise EventError(name or error.field, error.reason) from None


def _parquet_batches(path: Path, sink: RowSink) -> Iterator[RowBatch]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    missing = [name for name in ("session", "aid", "ts", "type") if name not in names]
    if missing:
        raise ValueError(f"{path}: parquet lacks column(s) {', '.join(missing)}; "
                         "expected session, aid, ts (seconds), type (0/1/2)")
    first_row = 1
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS,
                                      columns=["session", "aid", "ts", "type"]):
        sink.report.lines += batch.num_rows
        columns = _parquet_columns(batch, path)
        ok = _check_rows(columns, first_row, sink)
        session, aid, ts, code = (column[ok] if not ok.all() else column
                                  for column, _ in columns.values())
        session_list = session.tolist()
        yield session_list, list(map(Event, session_list, aid.tolist(), ts.tolist(),
                                     code.tolist()))
        first_row += batch.num_rows


def _parquet_columns(batch: Any, path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each needed column as (int64 values with ts in ms, null mask); nulls become -1."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ("session", "aid", "ts", "type"):
        column = batch.column(name)
        nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        kind = column.type
        if name == "ts" and pa.types.is_timestamp(kind):
            values = pc.cast(pc.cast(column, pa.timestamp("ms")), pa.int64()) \
                .fill_null(-1).to_numpy()
        elif name == "ts" and pa.types.is_floating(kind):
            seconds = column.fill_null(-1).to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore", over="ignore"):
                finite = np.isfinite(seconds)
                nulls |= ~finite
                values = np.rint(np.where(finite, seconds, -1) * 1000).astype(np.int64)
        elif pa.types.is_integer(kind):
            # An unsafe cast wraps ids past 2^63-1 to negatives, which are then rejected.
            values = column.cast(pa.int64(), safe=False).fill_null(-1).to_numpy(
                zero_copy_only=False)
            if name == "ts":
                # Seconds to ms; keep absurd values absurd instead of letting them overflow.
                values = np.where(values > MAX_TS_MS // 1000, MAX_TS_MS + 1, values * 1000)
        else:
            raise ValueError(f"{path}: parquet column {name} has type {kind}; expected "
                             "integers (ts: seconds as integer, float or timestamp)")
        out[name] = (values, nulls)
    return out


def _check_rows(columns: dict[str, tuple[np.ndarray, np.ndarray]], first_row: int,
                sink: RowSink) -> np.ndarray:
    """Mask of good rows; every bad row is reported, in row order, with its first bad field."""
    reasons: list[tuple[np.ndarray, str, Any]] = []
    for name in ("session", "aid"):
        values, nulls = columns[name]
        reasons.append((nulls, name, "missing"))
        reasons.append((~nulls & (values < 0), name, "must be between 0 and 2^63-1, got {}"))
    t_values, t_nulls = columns["type"]
    reasons.append((t_nulls, "type", "missing"))
    reasons.append((~t_nulls & ((t_values < 0) | (t_values > 2)), "type",
                    "unknown type {}; expected 0 (clicks), 1 (carts) or 2 (orders)"))
    ts_values, ts_nulls = columns["ts"]
    reasons.append((ts_nulls, "ts", "missing"))
    reasons.append((~ts_nulls & (ts_values < 0), "ts", "must not be negative, got {} ms"))
    reasons.append((~ts_nulls & (ts_values > MAX_TS_MS), "ts",
                    "is after 2100-01-01; is the column in ms instead of seconds?"))
    bad = np.zeros(len(ts_values), dtype=bool)
    for mask, _, _ in reasons:
        bad |= mask
    for row in np.flatnonzero(bad).tolist():
        for mask, name, reason in reasons:
            if mask[row]:
                sink.bad(first_row + row, name, reason.format(columns[name][0][row]))
                break
    return ~bad
