"""Replay recorded (or generated) events onto a bus as a live stream, time-scaled.

Events must come in global time order (see :func:`producers.ordering.time_ordered`). With
``speed=X`` an event at ``ts`` is published ``(ts − ts_first) / X`` wall seconds after the
start; with ``speed=None`` ("max") as fast as the bus takes them. Events due at the same moment
go out as one batch, so a fast replay costs one publish per batch, not per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from stream.events import Event
from stream.metrics import RateMeter

Publish = Callable[[Sequence[Event]], Awaitable[None]]


class ReplayProgress:
    """A replay as the page shows it: events of the replay sent into the stream (never
    posted ones), their pace, and the time left."""

    def __init__(self) -> None:
        self.state = "idle"
        self.total = 0
        self.replayed = 0
        self.speed: float | None = None
        self.last_ts = self.end_ts = 0
        self.finished_ms = 0
        """When it finished (wall-clock ms; 0: not yet)."""
        self._rate = RateMeter()

    def start(self, total: int, first_ts: int, end_ts: int, speed: float | None) -> None:
        self.state, self.total, self.replayed, self.speed = "running", total, 0, speed
        self.last_ts = first_ts
        self.end_ts = end_ts

    def sent(self, events: Sequence[Event]) -> None:
        if events:
            self.replayed += len(events)
            self.last_ts = events[-1].ts

    def finish(self) -> None:
        self.state = "finished"
        self.finished_ms = int(time.time() * 1000)

    def to_json(self) -> dict[str, Any]:
        rate = self._rate.rate(self.replayed)
        eta: float | None = None
        if self.state == "running":
            if self.speed is not None:  # paced: the event time left, at the replay's speed
                eta = max(0.0, (self.end_ts - self.last_ts) / 1000 / self.speed)
            elif rate > 0:
                eta = (self.total - self.replayed) / rate
        elif self.state == "finished":
            eta = 0.0
        return {"state": self.state, "total": self.total, "replayed": self.replayed,
                "events_per_s": rate, "eta_s": None if eta is None else round(eta, 1),
                **({"finished_ms": self.finished_ms} if self.finished_ms else {})}


@dataclass
class ReplayStats:
    events: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def parse_speed(text: str) -> float | None:
    """``"max"`` → None (no pacing); otherwise a positive factor of real time."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ValueError(f"speed {text!r}: expected a number (times real time) or 'max'") from None
    if not speed > 0:
        raise ValueError(f"speed {text!r}: must be positive")
    return speed


def speed_for(span_ms: int, duration_s: float) -> float | None:
    """The speed that replays ``span_ms`` of event time in ``duration_s`` seconds (None, no
    pacing, for a log whose events share one instant)."""
    if not duration_s > 0:
        raise ValueError(f"duration {duration_s!r}: must be positive seconds")
    return span_ms / 1000.0 / duration_s if span_ms > 0 else None


def replay_plan(events: int, span_ms: int, speed: float | None) -> str:
    """One line saying, before a replay starts, what it replays and how long it will take."""
    days = span_ms / 86_400_000
    what = f"{events:,} events over {days:,.1f} days of event time"
    if speed is None:
        return f"replaying {what} as fast as the bus takes them"
    seconds = span_ms / 1000.0 / speed
    took = f"{seconds:,.0f} s" if seconds < 120 else (
        f"{seconds / 60:,.0f} min" if seconds < 7200 else f"{seconds / 3600:,.1f} h")
    return (f"replaying {what} at {speed:,.0f}x real time: about {took} "
            f"({events / max(seconds, 1e-9):,.0f} events/s on average)")


async def replay_events(
    events: Iterable[Event],
    publish: Publish,
    *,
    speed: float | None = None,
    batch_size: int = 500,
    total: int | None = None,
    progress: bool = True,
    description: str = "replay",
) -> ReplayStats:
    """Publish ``events`` (in time order) paced by ``speed``; return what was sent."""
    stats = ReplayStats()
    start = time.monotonic()
    first_ts: int | None = None
    batch: list[Event] = []
    bar = tqdm(total=total, unit="ev", unit_scale=True, desc=description, disable=not progress,
               mininterval=0.5, smoothing=0.1)

    async def flush() -> None:
        await publish(batch)
        stats.events += len(batch)
        stats.batches += 1
        bar.update(len(batch))
        batch.clear()

    try:
        for event in events:
            if speed is not None:
                if first_ts is None:
                    first_ts = event.ts
                due = start + (event.ts - first_ts) / 1000.0 / speed
                delay = due - time.monotonic()
                if delay > 0:
                    if batch:
                        await flush()
                    await asyncio.sleep(delay)
            batch.append(event)
            if len(batch) >= batch_size:
                await flush()
                if speed is None:
                    await asyncio.sleep(0)  # let the consumer run
        if batch:
            await flush()
    finally:
        bar.close()
        stats.seconds = time.monotonic() - start
    return stats
