"""Fan-out of recommendation changes to WebSocket clients, latest value first.

Each client has one slot holding the newest lists of the session it watches, plus a flag.
A change overwrites the slot; the client's sender task wakes, takes what is there and sends it.
A slow client therefore skips intermediate versions and never builds a backlog, and a fast one
sees every change (the broadcast pattern of the websockets library's docs: per-client state,
no backpressure from one client onto the others).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from stream.pipeline import Recommendations


class RecommendationSource(Protocol):
    def recommendations(self, session: int) -> Recommendations: ...


class Subscription:
    """One client watching one session."""

    __slots__ = ("session", "latest", "ready", "origin")

    def __init__(self, session: int) -> None:
        self.session = session
        self.latest: Recommendations | None = None
        self.ready = asyncio.Event()
        self.origin = 0.0
        """perf_counter() when the batch that produced ``latest`` started (0 = none)."""

    def offer(self, recs: Recommendations, origin: float) -> None:
        self.latest = recs
        self.origin = origin
        self.ready.set()

    async def next(self) -> tuple[Recommendations, float]:
        """Wait for a value newer than the last one taken; return it and its origin time."""
        await self.ready.wait()
        self.ready.clear()
        assert self.latest is not None
        return self.latest, self.origin


class RecommendationHub:
    """Who watches which session, and what each was last sent."""

    def __init__(self, source: RecommendationSource, latency_window: int = 2048) -> None:
        self.source = source
        self._watchers: dict[int, set[Subscription]] = {}
        self._last: dict[int, Recommendations] = {}
        self.pushes = 0
        self.latencies_ms: deque[float] = deque(maxlen=latency_window)

    def subscribe(self, session: int) -> Subscription:
        """Register a client; its first value (the current lists) is ready at once."""
        sub = Subscription(session)
        watchers = self._watchers.setdefault(session, set())
        watchers.add(sub)
        recs = self._last.get(session)
        if recs is None:
            recs = self._last[session] = self.source.recommendations(session)
        sub.offer(recs, 0.0)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        watchers = self._watchers.get(sub.session)
        if watchers is None:
            return
        watchers.discard(sub)
        if not watchers:
            del self._watchers[sub.session]
            self._last.pop(sub.session, None)

    def watched(self) -> set[int]:
        return set(self._watchers)

    def subscribers(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    def notify(self, touched: Iterable[int], origin: float = 0.0) -> int:
        """Recompute the lists of touched, watched sessions; offer those that changed."""
        changed = 0
        watchers = self._watchers
        for session in touched:
            subs = watchers.get(session)
            if not subs:
                continue
            recs = self.source.recommendations(session)
            if recs.same_lists(self._last.get(session)):
                continue
            self._last[session] = recs
            changed += 1
            for sub in subs:
                sub.offer(recs, origin)
        return changed

    def record_push(self, origin: float) -> None:
        """A client was sent a value that a batch started at ``origin`` produced."""
        self.pushes += 1
        if origin:
            self.latencies_ms.append((time.perf_counter() - origin) * 1000.0)

    def latency_percentiles(self) -> dict[str, float | None]:
        values = sorted(self.latencies_ms)
        if not values:
            return {"p50": None, "p90": None, "p99": None}

        def pick(q: float) -> float:
            return round(values[min(len(values) - 1, int(q * len(values)))], 3)

        return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99)}
