"""Ranking metrics of the two evaluation protocols, one definition for offline and online use.

Both ``liverec evaluate`` and the running pipeline's prequential accuracy use these, so a figure
on the page and a figure in ``docs/quality.md`` mean the same thing.

* **Next item** (session-based literature): a list is judged against the one item that came
  next. HR@k = share of lists holding it in the first ``k``; MRR@k = mean of 1/rank (0 when
  absent); NDCG@k with one relevant item = mean of 1/log2(rank + 1).
* **OTTO**: per objective, ``recall = Σ |top-k ∩ truth| / Σ min(k, |truth|)`` over the sessions
  with a label of that type (clicks: one aid, carts/orders: the set of later aids); the score is
  ``0.10·clicks + 0.30·carts + 0.60·orders``. NDCG@k per objective uses binary relevance and the
  ideal DCG of ``min(k, |truth|)`` hits.

Duplicates in a prediction list count once, at their first rank (a shop shows an item once),
so a list cannot earn a hit twice.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

#: OTTO's weights of the three objectives in the score.
OBJECTIVE_WEIGHTS: Final = {"clicks": 0.10, "carts": 0.30, "orders": 0.60}
#: The list length every figure is judged at.
K: Final = 20

_LOG2: Final = [1.0 / math.log2(r + 2) for r in range(1024)]


def _discount(rank: int) -> float:
    """1 / log2(rank + 2) for a 0-based rank."""
    return _LOG2[rank] if rank < len(_LOG2) else 1.0 / math.log2(rank + 2)


def first_rank(predictions: Sequence[int], target: int, k: int = K) -> int | None:
    """0-based rank of ``target`` among the first ``k`` distinct predictions, or None.

    >>> first_rank([5, 5, 7], 7)
    1
    >>> first_rank([1, 2, 3], 3, k=2) is None
    True
    """
    seen: set[int] = set()
    for aid in predictions:
        if aid in seen:
            continue
        if aid == target:
            return len(seen)
        seen.add(aid)
        if len(seen) >= k:
            break
    return None


@dataclass
class NextItemScores:
    """HR, MRR and NDCG at ``k`` accumulated over judged positions."""

    k: int = K
    positions: int = 0
    hits: int = 0
    reciprocal: float = 0.0
    gain: float = 0.0

    def add(self, predictions: Sequence[int], target: int) -> int | None:
        """Judge one list against the item that came next; return the hit's rank or None."""
        rank = first_rank(predictions, target, self.k)
        self.positions += 1
        if rank is not None:
            self.hits += 1
            self.reciprocal += 1.0 / (rank + 1)
            self.gain += _discount(rank)
        return rank

    def merge(self, other: NextItemScores) -> None:
        self.positions += other.positions
        self.hits += other.hits
        self.reciprocal += other.reciprocal
        self.gain += other.gain

    def as_dict(self) -> dict[str, float | int]:
        n = self.positions or 1
        return {f"HR@{self.k}": self.hits / n, f"MRR@{self.k}": self.reciprocal / n,
                f"NDCG@{self.k}": self.gain / n, "positions": self.positions}


@dataclass
class RecallCounter:
    """One OTTO objective: hits, the recall denominator, NDCG, and how many were judged."""

    hits: int = 0
    possible: int = 0
    ndcg: float = 0.0
    judged: int = 0

    @property
    def recall(self) -> float:
        return self.hits / self.possible if self.possible else 0.0


@dataclass
class OttoScores:
    """Recall@k per objective and the weighted score, as OTTO's evaluation computes them."""

    k: int = K
    sessions: int = 0
    objectives: dict[str, RecallCounter] = field(
        default_factory=lambda: {name: RecallCounter() for name in OBJECTIVE_WEIGHTS})

    def add(self, predictions: Mapping[str, Sequence[int]],
            labels: Mapping[str, Collection[int]]) -> None:
        """Judge one session: ``labels`` maps objective → truth (an empty truth is skipped,
        as OTTO skips a session without a click label for clicks).

        As OTTO's official ``evaluate.py`` counts: the first ``k`` *positions* of a list (an
        aid repeated there takes a position and counts once; nothing past position ``k``
        counts), and hits are the distinct truth aids among them.
        """
        self.sessions += 1
        for name, truth in labels.items():
            counter = self.objectives.get(name)
            if counter is None:
                raise ValueError(f"unknown objective {name!r}; expected one of "
                                 f"{', '.join(OBJECTIVE_WEIGHTS)}")
            truth_set = set(truth)
            if not truth_set:
                continue
            first: dict[int, int] = {}  # aid → its first position in the top k
            for rank, aid in enumerate(predictions.get(name, ())[:self.k]):
                first.setdefault(aid, rank)
            hits = [rank for aid, rank in first.items() if aid in truth_set]
            ideal = min(self.k, len(truth_set))
            counter.hits += len(hits)
            counter.possible += ideal
            counter.ndcg += (sum(_discount(r) for r in hits)
                             / sum(_discount(r) for r in range(ideal)))
            counter.judged += 1

    @property
    def score(self) -> float:
        return sum(w * self.objectives[name].recall for name, w in OBJECTIVE_WEIGHTS.items())

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {
            f"recall_{name}@{self.k}": self.objectives[name].recall for name in OBJECTIVE_WEIGHTS}
        out["score"] = self.score
        out[f"NDCG@{self.k}"] = sum(
            w * (c.ndcg / c.judged if c.judged else 0.0)
            for w, c in ((OBJECTIVE_WEIGHTS[n], self.objectives[n]) for n in OBJECTIVE_WEIGHTS))
        out["sessions"] = self.sessions
        return out


class PrequentialRecall:
    """Online accuracy: each event judged against its type's list live just before it.

    An event of type ``t`` is a hit when its aid is in the top ``k`` of objective ``t``'s
    list; recall per objective is hits / judged events of that type.
    """

    def __init__(self, k: int = K) -> None:
        self.k = k
        self.judged = [0, 0, 0]
        self.hits = [0, 0, 0]

    def add(self, etype: int, lists: Sequence[Sequence[int]], aid: int) -> bool:
        self.judged[etype] += 1
        hit = first_rank(lists[etype], aid, self.k) is not None
        if hit:
            self.hits[etype] += 1
        return hit

    def recall(self) -> dict[str, float | None]:
        """Per objective; None until an event of its type was judged."""
        return {name: (h / j if j else None)
                for name, h, j in zip(OBJECTIVE_WEIGHTS, self.hits, self.judged, strict=True)}

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, h, j in zip(OBJECTIVE_WEIGHTS, self.hits, self.judged, strict=True):
            out[f"judged_{name}"] = j
            out[f"hits_{name}"] = h
        return out
