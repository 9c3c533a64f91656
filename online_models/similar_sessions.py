"""Sessions like this one, learned per event: a streaming session kNN (V-SKNN's idea).

Co-visitation and successors look at item pairs; a session's *whole* recent history says
more. V-SKNN (Ludewig & Jannach) finds the recent sessions that share items with the current
one, weighs each by the shared items (recent ones more) and recommends what those sessions
held. It beats pair statistics on the next click in the published comparisons; the
re-rankers read it as one more candidate source and feature.

Kept here incrementally and bounded: per item, the ``per_item`` sessions that most recently
held it; per session, its ``session_items`` most recent distinct items; at most
``max_sessions`` sessions, the least recently active dropped whole. So memory is bounded
by ``max_sessions × session_items`` entries whatever the stream sends, and sessions nobody
continues age out as new ones come.

Scoring accumulates similarities item by item over the holders of the current session's
items (no set intersections), so its cost is about ``items × per_item`` dictionary updates.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


class SimilarSessions:
    """Recent sessions by item, and the items of sessions like the current one.

    >>> s = SimilarSessions(neighbours=2)
    >>> for session, aid in [(1, 10), (1, 11), (2, 11), (2, 12), (3, 99)]:
    ...     s.add(session, aid)
    >>> s.top([10, 11], session=7, k=3)  # session 1 holds both, session 2 the last one
    [(11, 2.5), (10, 1.5), (12, 1.0)]
    """

    def __init__(self, neighbours: int = 100, per_item: int = 50, session_items: int = 30,
                 max_sessions: int = 50_000, history: int = 5) -> None:
        if min(neighbours, per_item, session_items, max_sessions, history) < 1:
            raise ValueError("every SimilarSessions bound must be at least 1")
        self.neighbours = neighbours
        self.per_item = per_item
        self.session_items = session_items
        self.max_sessions = max_sessions
        self.history = history
        """The current session's most recent distinct items that look for neighbours."""
        self._items: dict[int, dict[int, None]] = {}
        """Per session (least recently active first): its items, least recent first."""
        self._holders: dict[int, dict[int, None]] = {}
        """Per item: the sessions holding it, least recent first."""

    def add(self, session: int, aid: int) -> None:
        """``session`` viewed, carted or ordered ``aid``."""
        items = self._items.pop(session, None)
        if items is None:
            items = {}
            if len(self._items) >= self.max_sessions:
                self._drop(next(iter(self._items)))
        self._items[session] = items  # now the most recently active
        items.pop(aid, None)
        items[aid] = None
        if len(items) > self.session_items:
            oldest = next(iter(items))
            del items[oldest]
            self._release(oldest, session)
        holders = self._holders.get(aid)
        if holders is None:
            holders = self._holders[aid] = {}
        holders.pop(session, None)
        holders[session] = None
        if len(holders) > self.per_item:
            gone = next(iter(holders))
            del holders[gone]
            # The dropped session keeps the item in its own list: it still describes that
            # session as a neighbour of others found through its other items.

    def _release(self, aid: int, session: int) -> None:
        holders = self._holders.get(aid)
        if holders is not None:
            holders.pop(session, None)
            if not holders:
                del self._holders[aid]

    def _drop(self, session: int) -> None:
        for aid in self._items.pop(session):
            self._release(aid, session)

    def top(self, events: Sequence[int], session: int | None = None,
            k: int = 20) -> list[tuple[int, float]]:
        """The ``k`` best items after ``events`` (the session's aids, oldest first), score
        descending then aid ascending; ``session`` itself is never its own neighbour.

        The ``i``-th of ``n`` events weighs ``i / n`` (a repeat keeps its latest weight); a
        neighbour's similarity is the sum of the weights of the items it shares; each of its
        items scores similarity / ``step``, where ``step`` counts back from the last event to
        the most recent item the neighbour shares.
        """
        n = len(events)
        if not n:
            return []
        weight: dict[int, float] = {}
        for i, aid in enumerate(events, 1):
            weight[aid] = i / n  # a repeat: its latest
        back: dict[int, int] = {}  # steps back to each item's latest event, nearest first
        for i, aid in enumerate(reversed(events), 1):
            if aid not in back:
                back[aid] = i
                if len(back) >= self.history:
                    break
        similarity: dict[int, float] = {}
        step: dict[int, int] = {}
        holders_of = self._holders
        for aid, s in back.items():
            holders = holders_of.get(aid)
            if not holders:
                continue
            w = weight[aid]
            for other in holders:
                if other in similarity:
                    similarity[other] += w
                else:
                    similarity[other] = w
                    step[other] = s
        if session is not None:
            similarity.pop(session, None)
        if not similarity:
            return []
        if len(similarity) > self.neighbours:
            threshold = heapq.nlargest(self.neighbours, similarity.values())[-1]
            chosen = [(o, v) for o, v in similarity.items() if v >= threshold]
        else:
            chosen = list(similarity.items())
        scores: dict[int, float] = {}
        items_of = self._items
        for other, sim in chosen:
            gain = sim / step[other]
            for aid in items_of.get(other, ()):
                scores[aid] = scores.get(aid, 0.0) + gain
        if len(scores) > k:
            cut = heapq.nlargest(k, scores.values())[-1]
            best = [(a, v) for a, v in scores.items() if v >= cut]
        else:
            best = list(scores.items())
        best.sort(key=lambda kv: (-kv[1], kv[0]))
        return best[:k]

    def __len__(self) -> int:
        return len(self._items)
