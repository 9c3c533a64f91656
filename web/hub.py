"""Fan-out of recommendation changes to WebSocket clients, latest value first.

Each client has one slot holding the newest lists of the session it watches, plus a flag.
A change overwrites the slot; the client's sender task wakes, takes what is there and sends it.
A slow client therefore skips intermediate versions and never builds a backlog, and a fast one
sees every change (the broadcast pattern of the websockets library's docs: per-client state,
no backpressure from one client onto the others).

Recomputing lists is what a batch touching many watched sessions costs (about 0.6-0.9 ms a
session with the re-rankers, a tenth of that for its WebSocket send): :meth:`RecommendationHub.
notify` computes for a slice of time, then leaves the rest to a task that goes on between
other tasks, so the first sessions' pushes leave at once and requests are not held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from stream.pipeline import Recommendations

log = logging.getLogger("liverec.web")


#: Longest :meth:`RecommendationHub.notify` computes lists before it lets other tasks run
#: (sends, requests): 2,000 touched sessions took 1.2 s in one piece.
NOTIFY_SLICE_S = 0.01


class RecommendationSource(Protocol):
    def recommendations(self, session: int) -> Recommendations: ...


class Subscription:
    """One client watching one session.

    Its sender either waits in :meth:`next` (a task per client), or is woken: given ``wake``,
    each offer calls it, and the caller sends what :meth:`take` returns. No task or event
    then waits per idle client, which is most of them (4 KiB of a connection's 44).
    """

    __slots__ = ("session", "latest", "ready", "origin", "fresh", "wake")

    def __init__(self, session: int, wake: Callable[[], object] | None = None) -> None:
        self.session = session
        self.latest: Recommendations | None = None
        self.ready = asyncio.Event() if wake is None else None
        self.origin = 0.0
        """perf_counter() when the batch that produced ``latest`` started (0 = none)."""
        self.fresh = False
        """``latest`` has not been taken yet."""
        self.wake = wake

    def offer(self, recs: Recommendations, origin: float) -> None:
        self.latest = recs
        self.origin = origin
        self.fresh = True
        if self.ready is not None:
            self.ready.set()
        elif self.wake is not None:
            self.wake()

    def take(self) -> tuple[Recommendations, float] | None:
        """The value offered since the last one taken, if any, and its origin time."""
        if not self.fresh or self.latest is None:
            return None
        self.fresh = False
        return self.latest, self.origin

    async def next(self) -> tuple[Recommendations, float]:
        """Wait for a value newer than the last one taken; return it and its origin time."""
        assert self.ready is not None, "a subscription with a waker is read with take()"
        await self.ready.wait()
        self.ready.clear()
        self.fresh = False
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
        self._due: dict[int, float] = {}
        """Sessions whose lists are to be recomputed → the earliest batch start (origin)."""
        self._due_order: deque[int] = deque()
        self._drainer: asyncio.Task[None] | None = None

    def subscribe(self, session: int, wake: Callable[[], object] | None = None) -> Subscription:
        """Register a client; it gets the session's last known lists at once if there are
        any, else the first value :meth:`offer`-ed (the caller seeds it with the current one).
        ``wake``: called on each offer instead of waking a waiting :meth:`Subscription.next`."""
        sub = Subscription(session, wake)
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
        """Recompute the lists of touched, watched sessions from the source; offer them.

        Computes for at most :data:`NOTIFY_SLICE_S`; in a running event loop, the remaining
        sessions are queued and computed slice by slice between other tasks (a session queued
        twice is computed once, from the newest state). Returns how many sessions' lists were
        offered now; without a running loop, all are computed now.
        """
        assert self.source is not None, "notify() needs a source; use offer()"
        watchers, due, order = self._watchers, self._due, self._due_order
        for session in touched:
            if session in watchers and session not in due:
                due[session] = origin
                order.append(session)
        if self._drainer is not None:  # sessions queued earlier go first
            return 0
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._compute(float("inf"))
        changed = self._compute(NOTIFY_SLICE_S)
        if order:
            self._drainer = asyncio.create_task(self._drain(), name="hub-notify")
        return changed

    def _compute(self, budget_s: float) -> int:
        """Offer the queued sessions' lists, oldest first, until ``budget_s`` has passed."""
        assert self.source is not None
        recommendations, due, order = self.source.recommendations, self._due, self._due_order
        deadline = time.perf_counter() + budget_s
        changed = 0
        while order:
            session = order.popleft()
            origin = due.pop(session)
            if session in self._watchers:  # not left while queued
                changed += self.offer(recommendations(session), origin)
            if time.perf_counter() >= deadline:
                break
        return changed

    async def _drain(self) -> None:
        try:
            while self._due_order:
                await asyncio.sleep(0)  # the sends the last slice woke, requests, batches
                try:
                    self._compute(NOTIFY_SLICE_S)
                except Exception:  # as for a failing listener: logged, the others still go
                    log.exception("recomputing a watched session's lists failed")
        finally:
            self._drainer = None

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
