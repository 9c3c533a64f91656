"""Time-decayed item popularity per event type: the fill for short or brand-new sessions.

Forward decay (Cormode et al., 2009): an event at ``ts`` adds ``2^((ts − landmark)/half_life)``
to its item's score, so old events weigh relatively less without ever touching old scores.
The landmark sits on a fixed grid of :data:`GRID_HALF_LIVES` half-lives since the Unix epoch
(the same for every process, whatever event it saw first); when the exponent passes
:data:`RENORMALISE_AT`, every score is scaled down and the landmark moves up the grid, keeping
floats far from overflow.

Because scores only ever grow (and renormalisation scales all of them alike), the most popular
items can be tracked exactly in a small *leader board*: an item outside it can only enter by
overtaking the board's weakest member. Reading the top list never scans the catalog, which keeps
the serving path free of multi-millisecond stalls.
"""

from __future__ import annotations

import heapq

from online_models.types import TYPE_NAMES

#: Renormalise once a new event's weight would exceed 2^RENORMALISE_AT.
RENORMALISE_AT = 128
#: Landmarks are multiples of this many half-lives.
GRID_HALF_LIVES = 64
#: Pseudo-type for popularity over all event types together (the storefront's shelf).
ALL_TYPES = len(TYPE_NAMES)


class LeaderBoard:
    """Exact top-``size`` of a growing-only score map, maintained per update.

    A min-heap of ``(score, -aid)`` finds the weakest member when an outsider overtakes it;
    entries left behind by later updates are skipped when they surface (lazy deletion), and
    the heap is rebuilt when they pile up. The sorted top is cached and only recomputed when
    an update could change it.
    """

    __slots__ = ("size", "members", "floor", "_heap", "_sorted", "_kth")

    def __init__(self, size: int, cached: int = 100) -> None:
        self.size = size
        self.members: dict[int, float] = {}
        self.floor = 0.0
        """The weakest member's score once the board is full; 0 (below any score) until then."""
        self._heap: list[tuple[float, int]] = []
        self._sorted: list[int] | None = None
        self._kth = 0.0  # score of the last cached entry: below it nothing cached can change

    def offer(self, aid: int, score: float) -> None:
        """Call only when ``score > floor``: members only grow, so that covers them too."""
        members = self.members
        members[aid] = score
        heapq.heappush(self._heap, (score, -aid))
        if len(members) > self.size:
            self._evict_weakest()
        if len(members) >= self.size:
            self._refloor()
        if self._sorted is not None and (score >= self._kth or aid in self._sorted):
            self._sorted = None
        if len(self._heap) > 4 * self.size:
            self._heap = [(sc, -a) for a, sc in members.items()]
            heapq.heapify(self._heap)

    def _evict_weakest(self) -> None:
        members, heap = self.members, self._heap
        while True:
            score, negative = heapq.heappop(heap)
            if members.get(-negative) == score:  # not a stale entry
                del members[-negative]
                return

    def _refloor(self) -> None:
        members, heap = self.members, self._heap
        while members.get(-heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        self.floor = heap[0][0]

    def top(self, k: int) -> list[int]:
        cached = self._sorted
        if cached is None or len(cached) < min(k, len(self.members)):
            members = self.members
            n = max(k, 100)
            cached = self._sorted = heapq.nsmallest(n, members, key=lambda a: (-members[a], a))
            self._kth = members[cached[-1]] if len(cached) >= n else 0.0
        return cached[:k]

    def scale(self, factor: float) -> None:
        for aid in self.members:
            self.members[aid] *= factor
        self.floor *= factor
        self._heap = [(sc, -a) for a, sc in self.members.items()]
        heapq.heapify(self._heap)
        self._sorted = None


class Popularity:
    """Decayed counts per (type, aid) and an exact top list per type.

    >>> pop = Popularity(half_life_ms=1000)
    >>> for aid, ts in [(1, 0), (1, 1), (2, 3000)]:
    ...     pop.update(aid, ts, 0)
    >>> pop.top(0, 2)     # one recent click on 2 outweighs two clicks on 1, 3 half-lives ago
    [2, 1]
    """

    def __init__(self, half_life_ms: int = 24 * 3_600_000, board_size: int = 200) -> None:
        if half_life_ms <= 0:
            raise ValueError("half_life_ms must be positive")
        self.half_life = half_life_ms
        self.landmark: int | None = None
        # One map and one board per type, and a last one for all types together.
        self.scores: tuple[dict[int, float], ...] = tuple({} for _ in range(ALL_TYPES + 1))
        self.boards = tuple(LeaderBoard(board_size) for _ in range(ALL_TYPES + 1))

    def update(self, aid: int, ts: int, etype: int) -> None:
        if self.landmark is None:
            self.landmark = self._grid(ts)
        exponent = (ts - self.landmark) / self.half_life
        if exponent > RENORMALISE_AT:
            self._renormalise(ts)
            exponent = (ts - self.landmark) / self.half_life
        weight = 2.0**exponent
        for kind in (etype, ALL_TYPES):
            scores = self.scores[kind]
            score = scores[aid] = scores.get(aid, 0.0) + weight
            board = self.boards[kind]
            if score > board.floor:
                board.offer(aid, score)

    def _grid(self, ts: int) -> int:
        step = GRID_HALF_LIVES * self.half_life
        return ts - ts % step

    def _renormalise(self, ts: int) -> None:
        assert self.landmark is not None
        landmark = self._grid(ts)
        factor = 2.0 ** (-(landmark - self.landmark) / self.half_life)
        for scores in self.scores:
            for aid in scores:
                scores[aid] *= factor
        for board in self.boards:
            board.scale(factor)
        self.landmark = landmark

    def top(self, etype: int, k: int = 20) -> list[int]:
        """The ``k`` most popular aids for a type (or :data:`ALL_TYPES`); ``k`` ≤ board size."""
        return self.boards[etype].top(k)

    def items(self) -> int:
        """Distinct items seen."""
        return len(self.scores[ALL_TYPES])
