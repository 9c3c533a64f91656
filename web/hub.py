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
    """Who watches which session, and what each was last sent.

    Values come two ways: :meth:`notify` recomputes touched sessions' lists from a ``source``
    (the embedded pipeline); :meth:`offer` takes lists computed elsewhere (a web node gets
    them from the workers). Either way a client only sees a version newer than its last.
    """

    def __init__(self, source: RecommendationSource | None = None,
                 latency_window: int = 2048) -> None:
        self.source = source
        self._watchers: dict[int, set[Subscription]] = {}
        self._last: dict[int, Recommendations] = {}
        self.pushes = 0
        self.latencies_ms: deque[float] = deque(maxlen=latency_window)

    def subscribe(self, session: int) -> Subscription:
        """Register a client; it gets the session's last known lists at once if there are
        any, else the first value :meth:`offer`-ed (the caller seeds it with the current one)."""
        sub = Subscription(session)
        self._watchers.setdefault(session, set()).add(sub)
        recs = self._last.get(session)
        if recs is None and self.source is not None:
            recs = self._last[session] = self.source.recommendations(session)
        if recs is not None:
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

    def offer(self, recs: Recommendations, origin: float = 0.0) -> bool:
        """New lists for a session: pass them on if watched here and newer (a later version,
        or the same version's lists changed by others' events)."""
        subs = self._watchers.get(recs.session)
        if not subs:
            return False
        last = self._last.get(recs.session)
        # A newer version with the same lists still goes out: it tells the shopper their
        # event was applied.
        if last is not None and (recs.version < last.version or (
                recs.version == last.version and recs.same_lists(last))):
            return False
        self._last[recs.session] = recs
        for sub in subs:
            sub.offer(recs, origin)
        return True

    def notify(self, touched: Iterable[int], origin: float = 0.0) -> int:
        """Recompute the lists of touched, watched sessions from the source; offer them."""
        assert self.source is not None, "notify() needs a source; use offer()"
        watchers = self._watchers
        changed = 0
        for session in touched:
            if session in watchers:
                changed += self.offer(self.source.recommendations(session), origin)
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
