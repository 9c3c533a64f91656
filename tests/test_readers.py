"""Readers: every supported file becomes the same events; bad lines are reported, not fatal.

Real samples: OTTO (otto-de/recsys-dataset test resources, MIT), YOOCHOOSE (RecSys Challenge
2015 via rn5l/session-rec) and Diginetica (CIKM Cup 2016 via CRIPAC-DIG/SR-GNN); see the shared
data README. RetailRocket has no shared sample, so its tests write small files of its shape.
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
from producers.session_csv import (
    MAX_RETAILROCKET_VISITOR,
    RETAILROCKET_MAX_SESSIONS,
    RETAILROCKET_SESSION_GAP_MS,
)
from stream.events import CARTS, CLICKS, ORDERS, Event


@pytest.fixture(scope="module")
def otto_sample(shared_data: Path) -> Path:
    return shared_data / "otto-sample" / "train.jsonl"


@pytest.fixture(scope="module")
def yoochoose(shared_data: Path) -> Path:
    return shared_data / "yoochoose-100k" / "train_tr.tsv"


@pytest.fixture(scope="module")
def diginetica(shared_data: Path) -> Path:
    return shared_data / "diginetica-sample" / "train-item-views.csv"


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
    assert set(FORMATS) == {"otto-jsonl", "otto-parquet", "session-tsv", "diginetica",
                            "retailrocket"}


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


# --------------------------------------------------------------------------- Diginetica

#: 2016-05-09 00:00 UTC in ms, the first day of the Diginetica sample.
MAY_9 = 1_462_752_000_000
DAY = 86_400_000
DIGINETICA_HEADER = "session_id;user_id;item_id;timeframe;eventdate\n"


def test_diginetica_sample_reads_every_session_as_time_ordered_clicks(diginetica: Path) -> None:
    report = ReadReport()
    sessions = list(read_sessions(diginetica, report=report))
    assert detect_format(diginetica) == "diginetica"
    assert len(sessions) == 2_986 == len({sid for sid, _ in sessions})
    assert (report.lines, report.sessions, report.events, report.bad) == (12_391, 2_986, 12_391, 0)
    assert {e.type for _, events in sessions for e in events} == {CLICKS}
    assert all(e.session == sid for sid, events in sessions for e in events)
    assert all([e.ts for e in events] == sorted(e.ts for e in events) for _, events in sessions)
    # Session 1's first row is "1;NA;81766;526309;2016-05-09", but its earliest is timeframe 75848.
    assert sessions[0][1][0] == Event(1, 9654, MAY_9 + 75_848, CLICKS)
    assert sessions[0][1][-1].aid == 32627 and len(sessions[0][1]) == 10


def test_diginetica_ts_is_midnight_utc_plus_timeframe_sorted_within_session(
        tmp_path: Path) -> None:
    path = tmp_path / "train-item-views.csv"
    path.write_text(DIGINETICA_HEADER + "1;NA;81766;526309;2016-05-09\n1;NA;9654;75848;2016-05-09\n"
                    "2;5124;100;90000000;2016-05-10\n2;5124;101;1000;2016-05-11\n"
                    "3;NA;7;500;2016-05-10\n3;NA;8;500;2016-05-10\n")
    assert list(read_sessions(path)) == [
        (1, [Event(1, 9654, MAY_9 + 75_848, CLICKS), Event(1, 81766, MAY_9 + 526_309, CLICKS)]),
        # The day comes from eventdate, so a later day with a small timeframe can sort first.
        (2, [Event(2, 101, MAY_9 + 2 * DAY + 1_000, CLICKS),
             Event(2, 100, MAY_9 + DAY + 90_000_000, CLICKS)]),
        (3, [Event(3, 7, MAY_9 + DAY + 500, CLICKS), Event(3, 8, MAY_9 + DAY + 500, CLICKS)]),
    ]


def test_bad_diginetica_rows_name_the_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(DIGINETICA_HEADER + "1;NA;10;100;2016-05-09\nx;NA;10;100;2016-05-09\n"
                    "1;NA;10;-5;2016-05-09\n1;NA;10;100;2016-5-9\n1;NA;10;100;1969-12-31\n\n"
                    "1;NA;10\n1;NA;-3;100;2016-05-09\n1;NA;11;1e3;2016-05-09\n"
                    "1;NA;12;200;2016-05-09\n")
    report = ReadReport()
    events = list(read_events(path, report=report))
    assert events == [Event(1, 10, MAY_9 + 100, CLICKS), Event(1, 12, MAY_9 + 200, CLICKS)]
    assert [m.split(": ", 2)[:2] for m in report.errors] == [
        [f"{path}:3", "session_id"], [f"{path}:4", "timeframe"], [f"{path}:5", "eventdate"],
        [f"{path}:6", "eventdate"], [f"{path}:8", "line"], [f"{path}:9", "item_id"],
        [f"{path}:10", "timeframe"]]
    assert report.errors[1] == f"{path}:4: timeframe: must not be negative, got -5 ms"
    assert report.errors[2] == f"{path}:5: eventdate: must be a date YYYY-MM-DD, got '2016-5-9'"
    assert (report.lines, report.bad, report.sessions) == (9, 7, 1)
    with pytest.raises(BadInput) as raised:
        list(read_events(path, strict=True))
    assert (raised.value.line, raised.value.field) == (3, "session_id")
    assert str(raised.value) == f"{path}:3: session_id: must be an integer, got 'x'"


# --------------------------------------------------------------------------- RetailRocket

T = 1_433_221_332_117  # a RetailRocket timestamp (2015-06-02), ms
MINUTE = 60_000
RETAILROCKET_HEADER = "timestamp,visitorid,event,itemid,transactionid\n"


def test_retailrocket_cuts_visitor_sessions_after_30_minutes_ordered_by_first_event(
        tmp_path: Path) -> None:
    assert RETAILROCKET_SESSION_GAP_MS == 30 * MINUTE
    path = tmp_path / "events.csv"
    path.write_text(RETAILROCKET_HEADER + "\n".join([  # rows in no order, as in the real file
        f"{T + 60 * MINUTE + 1},257597,transaction,355908,4000",
        f"{T + 5 * MINUTE},3,view,11,",
        f"{T},257597,view,355908,",
        f"{T + 30 * MINUTE},257597,addtocart,355908,",  # exactly 30 minutes: same session
        f"{T},2,view,20,",
        f"{T + 5 * MINUTE},3,view,10,",
        f"{T - 1000},9,transaction,30,17",
    ]) + "\n")
    report = ReadReport()
    assert list(read_sessions(path, report=report)) == [
        (9000, [Event(9000, 30, T - 1000, ORDERS)]),
        (2000, [Event(2000, 20, T, CLICKS)]),  # same first ts as 257597000: lower id first
        (257597000, [Event(257597000, 355908, T, CLICKS),
                     Event(257597000, 355908, T + 30 * MINUTE, CARTS)]),
        (3000, [Event(3000, 11, T + 5 * MINUTE, CLICKS),  # equal ts: file order
                Event(3000, 10, T + 5 * MINUTE, CLICKS)]),
        # 30 minutes and 1 ms after the cart: the visitor's second session.
        (257597001, [Event(257597001, 355908, T + 60 * MINUTE + 1, ORDERS)]),
    ]
    assert (report.lines, report.sessions, report.events, report.bad) == (7, 5, 7, 0)


def test_retailrocket_merges_a_visitors_sessions_past_the_cap_into_the_last(
        tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    gap = RETAILROCKET_SESSION_GAP_MS + 1
    count = RETAILROCKET_MAX_SESSIONS + 2
    path.write_text(RETAILROCKET_HEADER + "".join(
        f"{T + i * gap},5,view,{i}," + "\n" for i in reversed(range(count))))
    sessions = list(read_sessions(path))
    assert [sid for sid, _ in sessions] == list(range(5000, 5000 + RETAILROCKET_MAX_SESSIONS))
    assert all(len(events) == 1 for _, events in sessions[:-1])
    assert [e.aid for e in sessions[-1][1]] == [count - 3, count - 2, count - 1]


def test_bad_retailrocket_rows_name_the_column(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(RETAILROCKET_HEADER + "\n".join([
        f"{T},1,view,10,", "soon,1,view,10,", "-5,1,view,10,", f"{T},1,click,10,",
        f"{T},{MAX_RETAILROCKET_VISITOR + 1},view,10,", f"{T},{MAX_RETAILROCKET_VISITOR},view,10,",
        f"{T},1,view,x,", f"{T},1", f"{T * 1000},1,view,10,",
    ]) + "\n")
    report = ReadReport()
    assert list(read_sessions(path, report=report)) == [
        (1000, [Event(1000, 10, T, CLICKS)]),
        (MAX_RETAILROCKET_VISITOR * 1000, [Event(MAX_RETAILROCKET_VISITOR * 1000, 10, T, CLICKS)]),
    ]
    assert [m.split(": ", 2)[:2] for m in report.errors] == [
        [f"{path}:3", "timestamp"], [f"{path}:4", "timestamp"], [f"{path}:5", "event"],
        [f"{path}:6", "visitorid"], [f"{path}:8", "itemid"], [f"{path}:9", "line"],
        [f"{path}:10", "timestamp"]]
    assert report.errors[2].startswith(f"{path}:5: event: unknown event 'click'; expected view")
    assert (report.lines, report.bad) == (9, 7)
    with pytest.raises(BadInput) as raised:
        list(read_events(path, strict=True))
    assert (raised.value.line, raised.value.field) == (3, "timestamp")


# --------------------------------------------------------------------------- both CSVs


def test_csv_formats_are_detected_by_header_even_with_a_txt_suffix(tmp_path: Path) -> None:
    views = tmp_path / "views.txt"
    views.write_text(DIGINETICA_HEADER + "4;NA;1;0;2016-05-09\n")
    events = tmp_path / "events.txt"
    events.write_text(RETAILROCKET_HEADER + f"{T},4,addtocart,1,\n")
    assert (detect_format(views), detect_format(events)) == ("diginetica", "retailrocket")
    assert list(read_events(views)) == [Event(4, 1, MAY_9, CLICKS)]
    assert list(read_events(events)) == [Event(4000, 1, T, CARTS)]
    comma_views = tmp_path / "comma.csv"  # Diginetica's columns, but not ;-separated
    comma_views.write_text(DIGINETICA_HEADER.replace(";", ","))
    with pytest.raises(ValueError, match="unknown event file format"):
        detect_format(comma_views)


def test_csv_headers_missing_a_column_are_rejected(tmp_path: Path) -> None:
    views = tmp_path / "views.csv"
    views.write_text(DIGINETICA_HEADER.replace(";", ",") + "4,NA,1,0,2016-05-09\n")
    with pytest.raises(BadInput, match=r"views.csv:1: header: missing column\(s\) session_id, "
                                       r"item_id, timeframe, eventdate; expected a ';'-separated"):
        list(read_events(views, "diginetica"))
    events = tmp_path / "events.csv"
    events.write_text("timestamp,visitorid,itemid\n1,2,3\n")
    with pytest.raises(BadInput, match=r"events.csv:1: header: missing column\(s\) event;"):
        list(read_events(events, "retailrocket"))
