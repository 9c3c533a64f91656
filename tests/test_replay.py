"""Time-scaled replay onto a bus."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from producers.replay import parse_speed, replay_events
from stream.events import Event


def events_over(span_ms: int, n: int) -> list[Event]:
    return [Event(i % 4, i, 1_000_000 + span_ms * i // (n - 1), 0) for i in range(n)]


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[float, list[Event]]] = []

    async def __call__(self, batch: Sequence[Event]) -> None:
        self.batches.append((time.monotonic(), list(batch)))


async def test_speed_scales_event_time_to_wall_time() -> None:
    """500 ms of event time at 5x real time takes about 100 ms, and keeps order."""
    recorder = Recorder()
    events = events_over(500, 50)
    started = time.monotonic()
    stats = await replay_events(events, recorder, speed=5.0, progress=False)
    elapsed = time.monotonic() - started
    assert 0.09 <= elapsed < 0.5
    assert [e for _, b in recorder.batches for e in b] == events
    assert stats.events == 50


async def test_events_are_not_sent_before_they_are_due() -> None:
    recorder = Recorder()
    events = events_over(300, 4)
    started = time.monotonic()
    await replay_events(events, recorder, speed=1.0, progress=False)
    for sent_at, batch in recorder.batches:
        due = (batch[0].ts - events[0].ts) / 1000
        assert sent_at - started >= due - 0.005


async def test_max_speed_sends_in_batches_without_waiting() -> None:
    recorder = Recorder()
    events = events_over(10**9, 1200)  # 11 days of event time
    await replay_events(events, recorder, speed=None, batch_size=500, progress=False)
    assert [len(b) for _, b in recorder.batches] == [500, 500, 200]


def test_speed_parsing_accepts_factors_and_max_only() -> None:
    assert parse_speed("max") is None and parse_speed("2.5") == 2.5
    for bad in ("fast", "0", "-3"):
        with pytest.raises(ValueError):
            parse_speed(bad)
