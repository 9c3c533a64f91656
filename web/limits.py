"""How much any one client may ask of a web process: request rates, event budgets, sockets.

Every limit is a token bucket or a counter keyed by client address or session. The tables are
bounded (least recently used keys go first), so a flood of new addresses or sessions cannot
grow them: a forgotten bucket comes back full, which only ever errs towards letting a client
through.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")


class Buckets:
    """Token buckets by key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float, size: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.size, self.clock = rate, burst, size, clock
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def wait(self, key: object, cost: float = 1.0) -> float:
        """What :meth:`take` would answer, spending nothing."""
        now = self.clock()
        level, then = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - then) * self.rate)
        if level >= cost:
            return 0.0
        return (cost - level) / self.rate if cost <= self.burst else math.inf

    def take(self, key: object, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket: 0.0 if it had them, else the seconds
        until it will (nothing is spent then)."""
        now = self.clock()
        level, then = self._buckets.pop(key, (self.burst, now))
        level = min(self.burst, level + (now - then) * self.rate)
        if level >= cost:
            level -= cost
            wait = 0.0
        else:
            self.refused += 1
            wait = (cost - level) / self.rate if cost <= self.burst else math.inf
        self._buckets[key] = (level, now)
        if len(self._buckets) > self.size:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


class Connections:
    """Open WebSockets: per process, per client address and per (private) session."""

    def __init__(self, total: int, per_client: int, per_session: int) -> None:
        self.total, self.per_client, self.per_session = total, per_client, per_session
        self.open = 0
        self._clients: dict[str, int] = {}
        self._sessions: dict[int, int] = {}
        self.refused = 0

    def admit(self, client: str, session: int | None) -> str | None:
        """Count a new connection in, or say why not (nothing is counted then). ``session``:
        a private session, whose tabs are capped (public ones are watched by everyone)."""
        reason = None
        if self.open >= self.total:
            reason = f"this server holds its maximum of {self.total:,} connections; retry later"
        elif self._clients.get(client, 0) >= self.per_client:
            reason = f"at most {self.per_client:,} connections per client address"
        elif session is not None and self._sessions.get(session, 0) >= self.per_session:
            reason = f"at most {self.per_session} connections watch one session; close a tab"
        if reason is not None:
            self.refused += 1
            return reason
        self.open += 1
        self._clients[client] = self._clients.get(client, 0) + 1
        if session is not None:
            self._sessions[session] = self._sessions.get(session, 0) + 1
        return None

    def release(self, client: str, session: int | None) -> None:
        self.open -= 1
        _drop(self._clients, client)
        if session is not None:
            _drop(self._sessions, session)


def _drop(counts: dict[K, int], key: K) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def retry_after(wait: float) -> str:
    """A ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(min(wait, 3600.0))))
