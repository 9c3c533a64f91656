"""Published session-based baselines, for comparison only: they never serve.

* **SR**, sequential rules (Ludewig & Jannach, 2018, "Evaluation of session-based
  recommendation algorithms"): in every training session, each item ``b`` at position ``j``
  gives each of the ``steps`` items before it a rule ``a → b`` weighing ``1 / (j − i)`` (the
  "div" weighting: nearer steps weigh more); each item keeps its ``pruning`` heaviest rules.
  A session's list is the rules of its last item, heaviest first.
* **V-SKNN**, vector-based session kNN (Ludewig & Jannach, 2018, after Jannach & Ludewig,
  2017): the current session is a vector over its items, the ``i``-th of ``n`` events weighing
  ``i / n`` (the "div" weighting: recent items weigh more; a repeat keeps its latest weight).
  Its neighbour candidates are the ``sample_size`` most recent training sessions (by their
  last event) that share an item with it; their similarity is the sum of the shared items'
  weights, and the ``k`` most similar are its neighbours. An item scores the sum over the
  neighbours holding it of similarity × ``1 / s``, where ``s`` counts back from the current
  session's last event to the most recent one the neighbour holds; the session's own items
  may be listed again.

Both are fitted on the training sessions once, like ``covis-batch``, and read the current
session's own events only (its last 30, the window every method sees).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence


def _heaviest(row: dict[int, float], k: int) -> list[tuple[int, float]]:
    """``k`` heaviest (aid, weight): weight descending, then aid ascending."""
    return heapq.nsmallest(k, row.items(), key=lambda kv: (-kv[1], kv[0]))


class SessionKNN:
    """V-SKNN over the training sessions given to :meth:`fit`.

    >>> knn = SessionKNN(k=2, sample_size=10)
    >>> knn.fit([([1, 2, 3], 10), ([2, 4], 20), ([5, 6], 30)])
    >>> knn.top([9, 2], 5)  # both sessions with 2 weigh 1 (2 is last); 3 and 4 come with it
    [2, 1, 3, 4]
    """

    def __init__(self, k: int = 100, sample_size: int = 500) -> None:
        if k < 1 or sample_size < 1:
            raise ValueError("k and sample_size must be at least 1")
        self.k = k
        self.sample_size = sample_size
        self._items: list[frozenset[int]] = []
        self._last: list[int] = []
        self._sessions_of: dict[int, list[int]] = {}

    def fit(self, sessions: Iterable[tuple[Sequence[int], int]]) -> None:
        """Learn from sessions: each its items in order and the time of its last event."""
        for items, last_ts in sessions:
            index = len(self._items)
            distinct = frozenset(items)
            self._items.append(distinct)
            self._last.append(last_ts)
            for item in distinct:
                self._sessions_of.setdefault(item, []).append(index)

    def top(self, history: Sequence[int], k: int = 20) -> list[int]:
        """The ``k`` best items after ``history`` (the session's items in order), score
        descending, then aid ascending."""
        if not history:
            return []
        relevant: set[int] = set()
        for item in set(history):
            relevant.update(self._sessions_of.get(item, ()))
        if len(relevant) > self.sample_size:
            last = self._last
            relevant = set(heapq.nlargest(self.sample_size, relevant,
                                          key=lambda s: (last[s], s)))
        n = len(history)
        weight = {item: i / n for i, item in enumerate(history, 1)}  # a repeat: its latest
        own = set(history)
        similar = [(sum(weight[i] for i in own & self._items[s]), s) for s in relevant]
        neighbours = heapq.nlargest(self.k, similar)
        scores: dict[int, float] = {}
        recent_first = history[::-1]
        for similarity, s in neighbours:
            held = self._items[s]
            step = next(i for i, item in enumerate(recent_first, 1) if item in held)
            gain = similarity / step
            for item in held:
                scores[item] = scores.get(item, 0.0) + gain
        return [aid for aid, _ in _heaviest(scores, k)]


class SequentialRules:
    """Rules ``a → b`` from items up to ``steps`` positions apart, ``a`` first.

    >>> sr = SequentialRules(steps=2, pruning=0)
    >>> sr.fit([[1, 2, 3], [1, 3]])
    >>> sr.rules[1]  # 1→2 one step (1), 1→3 two steps (1/2) and one step (1)
    {2: 1.0, 3: 1.5}
    >>> sr.top(1, 5)
    [3, 2]
    """

    def __init__(self, steps: int = 10, pruning: int = 20) -> None:
        if steps < 1 or pruning < 0:
            raise ValueError("steps must be at least 1 and pruning at least 0")
        self.steps = steps
        self.pruning = pruning
        """Rules kept per item (0: all)."""
        self.rules: dict[int, dict[int, float]] = {}
        self._top: dict[int, list[int]] = {}

    def fit(self, sessions: Iterable[Sequence[int]]) -> None:
        """Learn from sessions, each its items in order (repeats included, as published)."""
        rules = self.rules
        for items in sessions:
            for j, b in enumerate(items):
                for distance in range(1, min(self.steps, j) + 1):
                    row = rules.get(items[j - distance])
                    if row is None:
                        row = rules[items[j - distance]] = {}
                    row[b] = row.get(b, 0.0) + 1.0 / distance
        if self.pruning:
            for a, row in rules.items():
                if len(row) > self.pruning:
                    rules[a] = dict(_heaviest(row, self.pruning))
        self._top.clear()

    def top(self, last: int, k: int = 20) -> list[int]:
        """The ``k`` heaviest rules of ``last``: weight descending, then aid ascending."""
        cached = self._top.get(last)
        if cached is None or len(cached) < k:
            cached = self._top[last] = [b for b, _ in _heaviest(self.rules.get(last, {}), k)]
        return cached[:k]
