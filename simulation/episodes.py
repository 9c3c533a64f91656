"""The environment's open episodes: bounded, per client and in all, and forgotten when idle.

An episode's id is its only credential: 144 random bits, so nobody steps another's shopper.
A client address may hold ``per_client`` episodes at once and the process ``total``; an
episode idle for ``idle_s`` is dropped, so abandoned agents do not hold memory.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from simulation.shopper import Shopper


@dataclass
class Episode:
    shopper: Shopper
    owner: str
    used: float
    steps: int = 0
    clicks: int = 0


@dataclass
class Episodes:
    total: int = 10_000
    per_client: int = 100
    idle_s: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _open: OrderedDict[str, Episode] = field(default_factory=OrderedDict)
    _owners: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self._open)

    def open(self, owner: str, shopper: Shopper) -> tuple[str | None, str]:
        """``(id, "")`` for a new episode, or ``(None, why not)``; nothing is kept then."""
        self.expire()
        if self._owners[owner] >= self.per_client:
            return None, (f"this address holds {self.per_client} open episodes; finish some "
                          f"or let them expire ({self.idle_s:.0f} s idle)")
        if len(self._open) >= self.total:
            return None, f"the environment holds its maximum of {self.total:,} episodes"
        key = secrets.token_urlsafe(18)
        self._open[key] = Episode(shopper, owner, self.clock())
        self._owners[owner] += 1
        return key, ""

    def get(self, key: str) -> Episode | None:
        episode = self._open.get(key)
        if episode is not None:
            episode.used = self.clock()
            self._open.move_to_end(key)
        return episode

    def close(self, key: str) -> None:
        episode = self._open.pop(key, None)
        if episode is not None:
            self._release(episode.owner)

    def expire(self) -> int:
        """Drop episodes idle for longer than ``idle_s`` (the least recently used come first)."""
        limit = self.clock() - self.idle_s
        dropped = 0
        while self._open:
            key, episode = next(iter(self._open.items()))
            if episode.used > limit:
                break
            del self._open[key]
            self._release(episode.owner)
            dropped += 1
        return dropped

    def _release(self, owner: str) -> None:
        self._owners[owner] -= 1
        if self._owners[owner] <= 0:
            del self._owners[owner]
