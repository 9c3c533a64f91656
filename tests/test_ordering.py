"""Global time order: equal to a stable sort by ts, in memory or through spilled runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.ordering import time_ordered
from stream.events import Event

events_strategy = st.lists(
    st.builds(Event,
              session=st.integers(0, 5),
              aid=st.integers(0, 2**63 - 1),
              ts=st.integers(0, 20),  # a narrow range forces many ties
              type=st.integers(0, 2)),
    max_size=60,
)


def _stable_sort(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.ts)


@given(events_strategy)
@settings(max_examples=60, deadline=None)
def test_in_memory_order_equals_a_stable_sort_by_ts(events: list[Event]) -> None:
    assert list(time_ordered(events)) == _stable_sort(events)


@given(events_strategy, st.integers(1, 7))
@settings(max_examples=60, deadline=None)
def test_spilled_runs_merge_to_a_stable_sort_by_ts(events: list[Event], chunk: int) -> None:
    assert list(time_ordered(iter(events), chunk_events=chunk)) == _stable_sort(events)


def _session_log() -> list[Event]:
    """Session-grouped like a file: each session's events together, sessions overlapping."""
    return [Event(s, s * 10 + i, 1_000 * (s % 7) + 37 * i, i % 3)
            for s in range(40) for i in range(25)]


def test_spill_files_exist_while_merging_and_are_removed_at_the_end(tmp_path: Path) -> None:
    ordered = time_ordered(_session_log(), chunk_events=100, tmpdir=tmp_path)
    first = next(ordered)
    (workdir,) = tmp_path.iterdir()
    assert len(list(workdir.glob("*.npy"))) == 10
    rest = list(ordered)
    assert [first, *rest] == _stable_sort(_session_log())
    assert list(tmp_path.iterdir()) == []


def test_spill_files_are_removed_when_the_reader_stops_early(tmp_path: Path) -> None:
    ordered = time_ordered(_session_log(), chunk_events=64, tmpdir=tmp_path)
    assert next(ordered).ts == 0
    assert any(tmp_path.iterdir())
    ordered.close()
    assert list(tmp_path.iterdir()) == []


def test_input_that_fits_one_chunk_writes_no_files(tmp_path: Path) -> None:
    log = _session_log()
    assert list(time_ordered(log, chunk_events=len(log), tmpdir=tmp_path)) == _stable_sort(log)
    assert list(tmp_path.iterdir()) == []


def test_output_is_plain_python_events() -> None:
    (event,) = time_ordered([Event(1, 2**62, 3, 2)], chunk_events=1)
    assert event == Event(1, 2**62, 3, 2)
    assert all(type(value) is int for value in event)


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        list(time_ordered([], chunk_events=0))
