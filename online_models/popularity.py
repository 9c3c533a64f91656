"""Time-decayed item popularity per event type: the fill for short or brand-new sessions.

Forward decay (Cormode et al., 2009): an event at ``ts`` adds ``2^((ts − landmark)/half_life)``
to its item's score, so old events weigh relatively less without ever touching old scores.
When the exponent grows past :data:`RENORMALISE_AT`, every score is scaled down and the
landmark moves forward, keeping floats far from overflow.
"""

from __future__ import annotations

import heapq
from operator import itemgetter

from online_models.types import TYPE_NAMES

#: Renormalise once a new event's weight would exceed 2^RENORMALISE_AT.
RENORMALISE_AT = 256


class Popularity:
    """Decayed counts per (type, aid) and a cached top list per type.

    >>> pop = Popularity(half_life_ms=1000)
    >>> for aid, ts in [(1, 0), (1, 1), (2, 3000)]:
    ...     pop.update(aid, ts, 0)
    >>> pop.top(0, 2)     # one recent click on 2 outweighs two clicks on 1, 3 half-lives ago
    [2, 1]
    """

    def __init__(self, half_life_ms: int = 24 * 3_600_000, refresh_every: int = 5_000) -> None:
        if half_life_ms <= 0:
            raise ValueError("half_life_ms must be positive")
        self.half_life = half_life_ms
        self.refresh_every = refresh_every
        self.landmark: int | None = None
        self.scores: tuple[dict[int, float], ...] = tuple({} for _ in TYPE_NAMES)
        self._top: list[list[int] | None] = [None] * len(TYPE_NAMES)
        self._stale = [0] * len(TYPE_NAMES)

    def update(self, aid: int, ts: int, etype: int) -> None:
        if self.landmark is None:
            self.landmark = ts
        exponent = (ts - self.landmark) / self.half_life
        if exponent > RENORMALISE_AT:
            self._renormalise(ts)
            exponent = 0.0
        scores = self.scores[etype]
        scores[aid] = scores.get(aid, 0.0) + 2.0**exponent
        self._stale[etype] += 1

    def _renormalise(self, ts: int) -> None:
        assert self.landmark is not None
        factor = 2.0 ** (-(ts - self.landmark) / self.half_life)
        for scores in self.scores:
            for aid in scores:
                scores[aid] *= factor
        self.landmark = ts
        self._top = [None] * len(TYPE_NAMES)

    def top(self, etype: int, k: int = 20) -> list[int]:
        """The ``k`` most popular aids for a type, refreshed every ``refresh_every`` updates."""
        cached = self._top[etype]
        if cached is None or self._stale[etype] >= self.refresh_every or len(cached) < k:
            scores = self.scores[etype]
            # Ties broken by aid so that every replica computes the same list.
            best = heapq.nsmallest(max(k, 100), scores.items(), key=lambda kv: (-kv[1], kv[0]))
            cached = self._top[etype] = [aid for aid, _ in best]
            self._stale[etype] = 0
        return cached[:k]

    def score(self, aid: int, etype: int) -> float:
        return self.scores[etype].get(aid, 0.0)

    def items(self) -> int:
        return len(set().union(*self.scores))

    def top_overall(self, k: int) -> list[int]:
        """Most popular aids over all types (the storefront's default shelf)."""
        merged: dict[int, float] = {}
        for scores in self.scores:
            for aid, s in scores.items():
                merged[aid] = merged.get(aid, 0.0) + s
        return [aid for aid, _ in heapq.nlargest(k, merged.items(), key=itemgetter(1))]
