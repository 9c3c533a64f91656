"""Time-decayed item popularity per event type: the fill for short or brand-new sessions.

Forward decay (Cormode et al., 2009) in integers, so that sums from many workers are exact in
any order (a shared store adds them with ``ZINCRBY``, see ``docs/production.md``):

* time is cut into *epochs* of :data:`EPOCH_HALF_LIVES` half-lives since the Unix epoch;
* an event at ``ts`` in epoch ``e`` adds ``round(2^12 · 2^((ts − start(e)) / half_life))`` to
  its item's count in epoch ``e`` (``v_e``): later events weigh more, old counts are never
  touched;
* read in the latest epoch ``E`` seen, an item's score is ``v_E + (v_{E−1} >> 16)``: the
  previous epoch's counts in the current scale (the shift is exactly 16 half-lives of decay,
  floored). Older epochs weigh under 2^-16 and are dropped.

Scores are a pure function of the multiset of events (and ``E``), so every process that saw
the same events ranks items the same way. Weights stay below 2^28, so a count only passes
2^53 (where a Redis score, a double, stops being exact) after some 2^25 events of one item in
the last half-life.

Beside the decayed counts, each item's plain number of events (:data:`KNOWN`) in the latest
two *known epochs*, which are as long as the co-visitation epochs (112 days by default): the
fill of last resort, so that a list has ``k`` items whenever ``k`` items are known, however the
decayed weights round. Nothing older is kept: an item nobody viewed for two such epochs is
forgotten (``docs/security.md``, "What junk costs the state").

Within an epoch counts only grow, so each epoch's most popular items are tracked exactly in a
small *leader board* (an item outside can only enter by overtaking the weakest member), and the
merged top list is read with the threshold algorithm (Fagin et al., 2001) over the two boards:
reading it never scans the catalog.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping

from online_models.types import TYPE_NAMES

#: An epoch lasts this many half-lives; the previous epoch's counts are shifted right by it.
EPOCH_HALF_LIVES = 16
#: The weight of an event at the very start of an epoch (fixed point: 1.0 == 4096).
WEIGHT_ONE = 4096
#: Pseudo-type for popularity over all event types together (the storefront's shelf).
ALL_TYPES = len(TYPE_NAMES)
#: Pseudo-type: every item with an event in the latest two known epochs, by its number of
#: events of any type, not decayed. The fill of last resort: a list has ``k`` items whenever
#: ``k`` items are known, however the decayed scores round.
KNOWN = ALL_TYPES + 1
#: Default length of a known epoch: the co-visitation epoch's (8 half-lives of 14 days).
KNOWN_EPOCH_MS = 112 * 24 * 3_600_000


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
        self.members: dict[int, int] = {}
        self.floor = 0
        """The weakest member's score once the board is full; 0 (below any score) until then."""
        self._heap: list[tuple[int, int]] = []
        self._sorted: list[int] | None = None
        self._kth = 0  # score of the last cached entry: below it nothing cached can change

    def offer(self, aid: int, score: int) -> None:
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
            self._kth = members[cached[-1]] if len(cached) >= n else 0
        return cached[:k]

    def head(self, m: int) -> tuple[list[tuple[int, int]], int | None]:
        """The top ``m`` (aid, score), plus members tied with the last, and a bound.

        The bound is the highest score an item *not* returned can have: ``None`` when there is
        none (the board was never full, so it holds every item ever offered); the board's floor
        when the head reaches it (items outside may tie with it); else one below the last score
        returned.
        """
        members = self.members
        top = self.top(min(m, len(members))) if members else []
        full = len(members) >= self.size
        if len(top) < m:
            return [(a, members[a]) for a in top], (self.floor if full else None)
        last = members[top[-1]]
        listed = set(top)
        ties = sorted(a for a, s in members.items() if s == last and a not in listed)
        bound = last if full and last <= self.floor else last - 1
        return [(a, members[a]) for a in top + ties], bound


class Popularity:
    """Integer decayed counts per (epoch, type, aid) and an exact top list per type.

    >>> pop = Popularity(half_life_ms=1000)
    >>> for aid, ts in [(1, 0), (1, 1), (2, 3000)]:
    ...     pop.update(aid, ts, 0)
    >>> pop.top(0, 2)     # one recent click on 2 outweighs two clicks on 1, 3 half-lives ago
    [2, 1]
    """

    def __init__(self, half_life_ms: int = 24 * 3_600_000, board_size: int = 200,
                 cached_top: int = 40, *, keep_counts: bool = True,
                 known_epoch_ms: int = KNOWN_EPOCH_MS) -> None:
        """``keep_counts=False``: journal the increments only, for a store that holds the
        counts (a worker's popularity is read from Redis, so its own counts, boards and top
        lists would be a tenth of its time spent on nothing); reads then see no events."""
        if half_life_ms <= 0:
            raise ValueError("half_life_ms must be positive")
        self.half_life = half_life_ms
        self.epoch_ms = half_life_ms * EPOCH_HALF_LIVES
        self.board_size = board_size
        self.epoch = -1
        """The latest epoch seen (-1: none yet): scores are read in its scale."""
        self.counts: dict[int, tuple[dict[int, int], ...]] = {}
        """Per epoch (the latest two), per kind (types, then :data:`ALL_TYPES`): aid → count."""
        self.boards: dict[int, tuple[LeaderBoard, ...]] = {}
        self._scores: tuple[dict[int, int], ...] = tuple({} for _ in range(ALL_TYPES + 1))
        """Per kind: aid → its score now (:meth:`score`), kept up per update: the
        re-rankers read a few hundred scores per list."""
        self.journal: dict[tuple[int, int], dict[int, int]] | None = None
        """``(epoch, kind) → {aid: increment}`` since the last :meth:`take_journal`, when on."""
        self._start = self._end = 0  # the latest epoch's time range: the fast path
        self._tops: dict[int, tuple[list[int], set[int], int, bool]] = {}
        """Per kind: the cached top list, its members, the last one's score, and whether it
        is full (else every item is in it). Counts only grow, so an update changes the list
        only for a member or an item now scoring at least the last: that one is placed and the
        list re-sorted, instead of read again from the boards."""
        self._top_size = cached_top
        self._items = 0  # distinct items in the two epochs, kept up per update (see items())
        self.known_epoch_ms = known_epoch_ms
        self.known_epoch = -1
        """The latest known epoch seen (-1: none yet)."""
        self.known: dict[int, dict[int, int]] = {}
        """Per known epoch (the latest two): aid → its events (:data:`KNOWN`)."""
        self._known_boards: dict[int, LeaderBoard] = {}
        self.keep_counts = keep_counts
        if not keep_counts:
            self.take_journal()  # nowhere else for the increments to go

    def take_journal(self) -> dict[tuple[int, int], dict[int, int]]:
        """The increments since the last call; the first call switches journaling on."""
        journal, self.journal = self.journal or {}, {}
        return journal

    def weight(self, ts: int) -> tuple[int, int]:
        """An event's epoch and integer weight: the same in every process."""
        epoch = ts // self.epoch_ms
        return epoch, round(WEIGHT_ONE * 2.0 ** ((ts - epoch * self.epoch_ms) / self.half_life))

    def update(self, aid: int, ts: int, etype: int) -> None:
        self._know(aid, ts // self.known_epoch_ms)
        if self._start <= ts < self._end:
            epoch = self.epoch
            weight = round(WEIGHT_ONE * 2.0 ** ((ts - self._start) / self.half_life))
        else:
            epoch, weight = self.weight(ts)
            if epoch > self.epoch:
                self._enter(epoch)
            elif epoch < self.epoch - 1:
                return  # older than both epochs a score is made of: it would count 0
        if not self.keep_counts:
            self._journal(epoch, aid, etype, weight)
            return
        counts, boards, tops = self.counts[epoch], self.boards[epoch], self._tops
        latest = epoch == self.epoch
        for kind in (etype, ALL_TYPES):
            table = counts[kind]
            score = table[aid] = table.get(aid, 0) + weight
            merged = self._scores[kind]
            if latest:
                merged[aid] = merged.get(aid, 0) + weight
            else:  # a late event of the previous epoch: its count is shifted into the score
                merged[aid] = self.counts[self.epoch][kind].get(aid, 0) + (
                    score >> EPOCH_HALF_LIVES)
            board = boards[kind]
            if score > board.floor:
                board.offer(aid, score)
            cached = tops.get(kind)
            if cached is not None:  # keep the cached top list exact, in O(its length)
                listed, members, last, full = cached
                if aid in members or not full or self.score(kind, aid) >= last:
                    tops[kind] = self._rerank(kind, listed, aid)
        if score == weight:  # the aid's first count of the epoch (score is ALL_TYPES's)
            other = self.counts[epoch - 1 if epoch == self.epoch else self.epoch][ALL_TYPES]
            if aid not in other:
                self._items += 1
        if self.journal is not None:
            self._journal(epoch, aid, etype, weight)

    def _journal(self, epoch: int, aid: int, etype: int, weight: int) -> None:
        journal = self.journal
        assert journal is not None
        for kind in (etype, ALL_TYPES):
            row = journal.get((epoch, kind))
            if row is None:
                row = journal[(epoch, kind)] = {}
            row[aid] = row.get(aid, 0) + weight

    def _know(self, aid: int, epoch: int) -> None:
        """Count an event of ``aid`` in known epoch ``epoch``."""
        if epoch > self.known_epoch:
            for old in [e for e in self.known if e < epoch - 1]:
                del self.known[old], self._known_boards[old]
            for e in (epoch - 1, epoch):
                if e not in self.known:
                    self.known[e] = {}
                    self._known_boards[e] = LeaderBoard(self.board_size)
            self.known_epoch = epoch
        elif epoch < self.known_epoch - 1:
            return  # forgotten already
        if self.keep_counts:
            table = self.known[epoch]
            count = table[aid] = table.get(aid, 0) + 1
            board = self._known_boards[epoch]
            if count > board.floor:
                board.offer(aid, count)
        if self.journal is not None:
            row = self.journal.get((epoch, KNOWN))
            if row is None:
                row = self.journal[(epoch, KNOWN)] = {}
            row[aid] = row.get(aid, 0) + 1

    def _enter(self, epoch: int) -> None:
        """A later epoch: keep the one before it, drop older ones."""
        for old in [e for e in self.counts if e < epoch - 1]:
            del self.counts[old], self.boards[old]
        for e in (epoch - 1, epoch):
            if e not in self.counts:
                self.counts[e] = tuple({} for _ in range(ALL_TYPES + 1))
                self.boards[e] = tuple(LeaderBoard(self.board_size)
                                       for _ in range(ALL_TYPES + 1))
        self.epoch = epoch
        self._start, self._end = epoch * self.epoch_ms, (epoch + 1) * self.epoch_ms
        self._scores = tuple({aid: shifted for aid, count in table.items()
                              if (shifted := count >> EPOCH_HALF_LIVES)}
                             for table in self.counts[epoch - 1])
        self._tops.clear()
        self._items = len(self.counts[epoch - 1][ALL_TYPES])  # the new epoch is empty

    def top(self, etype: int, k: int = 20) -> list[int]:
        """The ``k`` most popular aids of a type (or :data:`ALL_TYPES`, or :data:`KNOWN`), by
        score descending then aid ascending (``k`` up to the board size is cheap; beyond,
        exact but slow)."""
        if etype == KNOWN:
            if self.known_epoch < 0:
                return []
            now, before = self.known_epoch, self.known_epoch - 1
            return merged_top(k, _table_side(self.known[now], self._known_boards[now]),
                              _table_side(self.known[before], self._known_boards[before]),
                              shift=0)
        cached = self._tops.get(etype)
        if cached is not None and (len(cached[0]) >= k or not cached[3]):
            return cached[0][:k]
        if self.epoch < 0:
            return []
        self._top_size = max(self._top_size, k)
        listed = merged_top(self._top_size, self._side(self.epoch, etype),
                            self._side(self.epoch - 1, etype))
        self._tops[etype] = self._cached(etype, listed)
        return listed[:k]

    def _cached(self, kind: int, listed: list[int]) -> tuple[list[int], set[int], int, bool]:
        last = self.score(kind, listed[-1]) if listed else 0
        return listed, set(listed), last, len(listed) >= self._top_size

    def _rerank(self, kind: int, listed: list[int],
                aid: int) -> tuple[list[int], set[int], int, bool]:
        """The cached list after ``aid``'s score grew: every other item kept its score, so
        placing ``aid`` (and dropping the last if it no longer fits) keeps it exact."""
        candidates = listed if aid in listed else [*listed, aid]
        get = self._scores[kind].get
        ranked = sorted(candidates, key=lambda a: (-get(a, 0), a))[:self._top_size]
        return self._cached(kind, ranked)

    def score(self, etype: int, aid: int) -> int:
        """An item's score of a type (or :data:`ALL_TYPES`) now, in the latest epoch's scale
        (:data:`WEIGHT_ONE` per event at its start): its count in the latest epoch plus the
        previous one's, shifted, as kept up per update; 0 before any event."""
        return self._scores[etype].get(aid, 0)

    def _side(self, epoch: int, kind: int) -> TopSide:
        return _table_side(self.counts[epoch][kind], self.boards[epoch][kind])

    def items(self) -> int:
        """Distinct items in the current and the previous epoch."""
        return self._items


class TopSide:
    """One epoch's counts as :func:`merged_top` reads them (in memory or in Redis)."""

    __slots__ = ("head", "values")

    def __init__(self, head: Callable[[int], tuple[list[tuple[int, int]], int | None]],
                 values: Callable[[list[int]], list[int]]) -> None:
        self.head = head
        """``head(m)``: the top ``m`` (aid, count) with ties, and the bound of the rest."""
        self.values = values
        """``values(aids)``: their counts (0 when absent)."""


def _table_side(table: dict[int, int], board: LeaderBoard) -> TopSide:
    """Counts in memory, and the leader board over them, as :func:`merged_top` reads them."""
    def head(m: int) -> tuple[list[tuple[int, int]], int | None]:
        if m <= board.size or len(table) == len(board.members):
            listed, bound = board.head(m)
            return listed, (None if len(listed) == len(table) else bound)
        return sorted_head(table, m)  # past the board: rare by construction

    return TopSide(head, lambda aids: [table.get(a, 0) for a in aids])


def sorted_head(table: Mapping[int, int], m: int) -> tuple[list[tuple[int, int]], int | None]:
    """``TopSide.head`` by an exact (slow) sort of every count: the top ``m`` (aid, count)
    with the ties of the last, and the bound of the rest (None: nothing is left out)."""
    ranked = sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) <= m:
        return ranked, None
    last = ranked[m - 1][1]
    return [kv for kv in ranked if kv[1] >= last], last - 1


def merged_top(k: int, current: TopSide, previous: TopSide,
               shift: int = EPOCH_HALF_LIVES) -> list[int]:
    """Top ``k`` aids by ``v_E + (v_{E−1} >> shift)``, score desc then aid asc (``shift`` 0:
    plain counts, :data:`KNOWN`).

    The threshold algorithm: take the heads of both epochs, score every candidate exactly;
    once the ``k``-th score beats what any item outside both heads could reach, the answer is
    exact. Otherwise look deeper.
    """
    m = 2 * k
    while True:
        head_now, bound_now = current.head(m)
        head_before, bound_before = previous.head(m)
        aids = list(dict.fromkeys(a for a, _ in (*head_now, *head_before)))
        scored = sorted(
            ((-(now + (before >> shift)), aid)
             for aid, now, before in zip(aids, current.values(aids), previous.values(aids),
                                         strict=True)),
        )[:k]
        if bound_now is None and bound_before is None:
            return [aid for _, aid in scored]
        threshold = (bound_now or 0) + ((bound_before or 0) >> shift)
        if len(scored) == k and -scored[-1][0] > threshold:
            return [aid for _, aid in scored]
        m *= 4

