"""Readers: every supported file becomes the same events; bad lines are reported, not fatal.

Real samples: OTTO (otto-de/recsys-dataset test resources, MIT) and YOOCHOOSE (RecSys Challenge
2015 via rn5l/session-rec); see the shared data README.
"""

from __future__ import annotations

import gzip
import logging
import shutil
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from producers.readers import (
    FORMATS,
    MAX_REPORTED_ERRORS,
    BadInput,
    ReadReport,
    detect_format,
    read_events,
    read_sessions,
)
from stream.events import CARTS, CLICKS, ORDERS, Event


@pytest.fixture(scope="module")
def otto_sample(shared_data: Path) -> Path:
    return shared_data / "otto-sample" / "train.jsonl"


@pytest.fixture(scope="module")
def yoochoose(shared_data: Path) -> Path:
    return shared_data / "yoochoose-100k" / "train_tr.tsv"


def _otto_as_parquet(source: Path, target: Path) -> None:
    """The Kaggle variant: one row per event, ts in seconds, type codes."""
    events = list(read_events(source))
    table = pa.table({
        "session": pa.array([e.session for e in events], pa.int32()),
        "aid": pa.array([e.aid for e in events], pa.int32()),
        "ts": pa.array([e.ts // 1000 for e in events], pa.int32()),
        "type": pa.array([e.type for e in events], pa.uint8()),
    })
    pq.write_table(table, target, row_group_size=300)


def test_otto_sample_reads_every_session_and_type(otto_sample: Path) -> None:
    report = ReadReport()
    sessions = list(read_sessions(otto_sample, report=report))
    types = Counter(e.type for _, events in sessions for e in events)
    assert len(sessions) == 20
    assert sum(len(events) for _, events in sessions) == 862
    assert types == {CLICKS: 800, CARTS: 52, ORDERS: 10}
    assert (report.lines, report.sessions, report.events, report.bad) == (20, 20, 862, 0)
    assert report.path == otto_sample
    assert all(e.session == sid for sid, events in sessions for e in events)
    first = sessions[0][1][0]
    assert first == Event(0, 1517085, 1659304800025, CLICKS)


def test_gzip_is_detected_by_magic_bytes_not_name(otto_sample: Path, tmp_path: Path) -> None:
    zipped = tmp_path / "renamed.jsonl"  # gzip content, no .gz suffix
    with open(otto_sample, "rb") as src, gzip.open(zipped, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert detect_format(zipped) == "otto-jsonl"
    assert list(read_events(zipped)) == list(read_events(otto_sample))


def test_session_tsv_reads_yoochoose_as_clicks_in_ms(yoochoose: Path) -> None:
    report = ReadReport()
    events = list(read_events(yoochoose, report=report))
    assert len(events) == 53_254 == report.events == report.lines
    assert {e.type for e in events} == {CLICKS}
    # Header line "SessionId ItemId Time", then "3 214716935 1396437466.94".
    assert events[0] == Event(3, 214716935, 1396437466940, CLICKS)
    assert report.bad == 0


def test_kaggle_parquet_gives_the_jsonl_events_with_ts_in_seconds(
        otto_sample: Path, tmp_path: Path) -> None:
    parquet = tmp_path / "train.parquet"
    _otto_as_parquet(otto_sample, parquet)
    report = ReadReport()
    sessions = list(read_sessions(parquet, report=report))
    expected = [(sid, [e._replace(ts=e.ts // 1000 * 1000) for e in events])
                for sid, events in read_sessions(otto_sample)]
    assert sessions == expected  # 20 sessions survive row groups of 300 rows
    assert (report.lines, report.sessions, report.events) == (862, 20, 862)


def test_row_formats_group_consecutive_rows_of_a_session(tmp_path: Path) -> None:
    tsv = tmp_path / "split.tsv"
    tsv.write_text("SessionId\tItemId\tTime\n1\t10\t1.0\n1\t11\t2\n2\t10\t3\n1\t12\t4\n")
    assert [(sid, [e.aid for e in events]) for sid, events in read_sessions(tsv)] == [
        (1, [10, 11]), (2, [10]), (1, [12])]


def test_tsv_columns_are_found_by_header_name(tmp_path: Path) -> None:
    tsv = tmp_path / "reordered.tsv"
    tsv.write_text("Time\tSessionId\tCategory\tItemId\n1396437466.94\t3\tx\t7\n")
    assert list(read_events(tsv)) == [Event(3, 7, 1396437466940, CLICKS)]


def test_detect_format_names_each_format(otto_sample: Path, yoochoose: Path,
                                         tmp_path: Path) -> None:
    parquet = tmp_path / "no-suffix"
    _otto_as_parquet(otto_sample, parquet)
    assert detect_format(otto_sample) == "otto-jsonl"
    assert detect_format(yoochoose) == "session-tsv"
    assert detect_format(parquet) == "otto-parquet"
    assert set(FORMATS) == {"otto-jsonl", "otto-parquet", "session-tsv"}


def test_unknown_format_and_missing_file_fail_clearly(tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="unknown event file format"):
        detect_format(odd)
    with pytest.raises(FileNotFoundError, match="no such event file"):
        read_sessions(tmp_path / "absent.jsonl")  # fails at the call, not at first next()
    with pytest.raises(ValueError, match="unknown format"):
        read_sessions(odd, "csv")


def _jsonl(*events: object) -> bytes:
    return orjson.dumps({"session": 1, "events": list(events)})


GOOD = {"aid": 5, "ts": 1659304800000, "type": "clicks"}


@pytest.fixture
def bad_jsonl(tmp_path: Path) -> Path:
    lines = [
        _jsonl(GOOD, {**GOOD, "type": "carts"}),  # 1 good
        b"",  # 2 blank: ignored, still counts for numbering
        b"{not json",  # 3
        _jsonl(GOOD, {"aid": 5, "type": "clicks"}),  # 4 missing ts in events[1]
        _jsonl({**GOOD, "type": "views"}),  # 5 unknown type
        _jsonl({**GOOD, "ts": -1}),  # 6 negative ts
        _jsonl({**GOOD, "ts": 1659304800000000}),  # 7 ts in µs
        orjson.dumps({"session": "x", "events": [GOOD]}),  # 8 ill-typed session
        orjson.dumps({"session": 2, "events": [{**GOOD, "aid": 9}]}),  # 9 good
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_jsonl_lines_are_logged_counted_and_skipped(
        bad_jsonl: Path, caplog: pytest.LogCaptureFixture) -> None:
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger="liverec.producers"):
        sessions = list(read_sessions(bad_jsonl, report=report))
    assert [(sid, len(events)) for sid, events in sessions] == [(1, 2), (2, 1)]
    assert (report.lines, report.bad, report.sessions, report.events) == (8, 6, 2, 3)
    where = [message.split(": ", 1)[0] for message in report.errors]
    assert where == [f"{bad_jsonl}:{line}" for line in (3, 4, 5, 6, 7, 8)]
    assert report.errors[0].startswith(f"{bad_jsonl}:3: line: not valid JSON")
    assert report.errors[1] == f"{bad_jsonl}:4: events[1].ts: missing"
    assert report.errors[2].startswith(f"{bad_jsonl}:5: events[0].type: unknown type 'views'")
    assert report.errors[3] == f"{bad_jsonl}:6: events[0].ts: must not be negative, got -1"
    assert "µs or ns" in report.errors[4]
    assert report.errors[5].startswith(f"{bad_jsonl}:8: session: must be an integer")
    assert [r.getMessage() for r in caplog.records] == report.errors


def test_strict_mode_raises_on_the_first_bad_line(bad_jsonl: Path) -> None:
    events = read_events(bad_jsonl, strict=True)
    assert next(events).aid == 5  # line 1 is fine
    with pytest.raises(BadInput) as raised:
        list(events)
    assert str(raised.value).startswith(f"{bad_jsonl}:3: line: not valid JSON")
    assert (raised.value.line, raised.value.field) == (3, "line")


def test_bad_tsv_rows_name_the_column(tmp_path: Path) -> None:
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("SessionId\tItemId\tTime\n1\t10\t1.5\n\nx\t10\t2\n1\t10\tsoon\n1\t10\n"
                   "1\t-4\t3\n1\t10\t1396437466940\n1\t11\t4\n")
    report = ReadReport()
    events = list(read_events(tsv, report=report))
    assert events == [Event(1, 10, 1500, CLICKS), Event(1, 11, 4000, CLICKS)]
    assert [m.split(": ", 2)[:2] for m in report.errors] == [
        [f"{tsv}:4", "SessionId"], [f"{tsv}:5", "Time"], [f"{tsv}:6", "line"],
        [f"{tsv}:7", "ItemId"], [f"{tsv}:8", "Time"]]
    assert (report.lines, report.bad) == (7, 5)


def test_tsv_without_the_header_is_rejected(tmp_path: Path) -> None:
    tsv = tmp_path / "headless.tsv"
    tsv.write_text("1\t10\t1.5\n")
    with pytest.raises(BadInput, match=r"headless.tsv:1: header: missing column"):
        list(read_events(tsv))


def test_bad_parquet_rows_are_reported_by_row_number(tmp_path: Path) -> None:
    parquet = tmp_path / "bad.parquet"
    pq.write_table(pa.table({
        "session": pa.array([1, 1, 1, 1, 2], pa.int64()),
        "aid": pa.array([10, None, 12, 13, 14], pa.int64()),
        "ts": pa.array([100, 101, -5, 103, 10**12], pa.int64()),
        "type": pa.array([0, 1, 2, 7, 1], pa.int8()),
    }), parquet)
    report = ReadReport()
    assert list(read_events(parquet, report=report)) == [Event(1, 10, 100_000, CLICKS)]
    assert [m.split(": ", 2)[:2] for m in report.errors] == [
        [f"{parquet}:2", "aid"], [f"{parquet}:3", "ts"], [f"{parquet}:4", "type"],
        [f"{parquet}:5", "ts"]]
    with pytest.raises(BadInput, match=r"bad.parquet:2: aid: missing"):
        list(read_events(parquet, strict=True))


def test_report_keeps_the_first_messages_but_counts_all(tmp_path: Path) -> None:
    path = tmp_path / "noisy.jsonl"
    path.write_bytes(b"[]\n" * (MAX_REPORTED_ERRORS + 5))
    report = ReadReport()
    assert list(read_events(path, "otto-jsonl", report=report)) == []
    assert report.bad == MAX_REPORTED_ERRORS + 5
    assert len(report.errors) == MAX_REPORTED_ERRORS
    assert report.errors[-1].startswith(f"{path}:{MAX_REPORTED_ERRORS}: line:")
