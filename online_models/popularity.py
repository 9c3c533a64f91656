"""Time-decayed item popularity per event type: the fill for short or brand-new sessions.

Forward decay (Cormode et al., 2009): an event at ``ts`` adds ``2^((ts − landmark)/half_life)``
to its item's score, so old events weigh relatively less without ever touching old scores.
When the exponent grows past :data:`RENORMALISE_AT`, every score is scaled down and the
landmark moves forward, keeping floats far from overflow.
"""

from __future__ import annotations

import heapq

from online_models.types import TYPE_NAMES

#: Pseudo-type for popularity over all event types together.
ALL_TYPES = len(TYPE_NAMES)

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
        # One dict per type, and a last one for all types together (the storefront's shelf).
        self.scores: tuple[dict[int, float], ...] = tuple({} for _ in range(len(TYPE_NAMES) + 1))
        self._top: list[list[int] | None] = [None] * (len(TYPE_NAMES) + 1)
        self._stale = [0] * (len(TYPE_NAMES) + 1)

    def update(self, aid: int, ts: int, etype: int) -> None:
        if self.landmark is None:
            self.landmark = ts
        exponent = (ts - self.landmark) / self.half_life
        if exponent > RENORMALISE_AT:
            self._renormalise(ts)
            exponent = 0.0
        weight = 2.0**exponent
        scores = self.scores[etype]
        scores[aid] = scores.get(aid, 0.0) + weight
        overall = self.scores[ALL_TYPES]
        overall[aid] = overall.get(aid, 0.0) + weight
        self._stale[etype] += 1
        self._stale[ALL_TYPES] += 1

    def _renormalise(self, ts: int) -> None:
        assert self.landmark is not None
        factor = 2.0 ** (-(ts - self.landmark) / self.half_life)
        for scores in self.scores:
            for aid in scores:
                scores[aid] *= factor
        self.landmark = ts
        self._top = [None] * len(self._top)

    def top(self, etype: int, k: int = 20) -> list[int]:
        """The ``k`` most popular aids for a type (or :data:`ALL_TYPES`), refreshed every
        ``refresh_every`` updates: a full scan of the catalog is too dear to run per read."""
        cached = self._top[etype]
        if cached is None or self._stale[etype] >= self.refresh_every or len(cached) < k:
            scores = self.scores[etype]
            # Ties broken by aid so that every replica computes the same list.
            best = heapq.nsmallest(max(k, 100), scores.items(), key=_by_score_then_aid)
            cached = self._top[etype] = [aid for aid, _ in best]
            self._stale[etype] = 0
        return cached[:k]

    def score(self, aid: int, etype: int) -> float:
        return self.scores[etype].get(aid, 0.0)

    def items(self) -> int:
        """Distinct items seen."""
        return len(self.scores[ALL_TYPES])


def _by_score_then_aid(kv: tuple[int, float]) -> tuple[float, int]:
    return (-kv[1], kv[0])
