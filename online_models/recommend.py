"""From a session's recent events to three lists of 20: next click, next cart, next order.

This is the public OTTO "candidate rerank" recipe (Deotte, 2022; local score 0.5647) made to
read live state: the session's own items first, recency- and type-weighted; then co-visitation
neighbours of those items; then time-decayed popularity, so a new session or an unknown item
still gets ``k`` items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Protocol

from online_models.popularity import ALL_TYPES, KNOWN
from online_models.types import CARTS, CLICKS, ORDERS

#: History weight per event type (clicks, carts, orders), from the public recipe.
TYPE_MULTIPLIERS = (1.0, 6.0, 3.0)
#: buy2buy neighbours' bonus when the session already has 20 items of its own.
BUY2BUY_BONUS = 0.1


class Neighbours(Protocol):
    """Co-visitation rows as the recipe reads them: in memory or in a shared store."""

    def top(self, matrix: str, aid: int, k: int = 20) -> list[tuple[int, int]]:
        """The ``k`` heaviest (neighbour, weight): weight descending, then aid ascending."""


class Popular(Protocol):
    """Popularity as the recipe reads it."""

    def top(self, etype: int, k: int = 20) -> list[int]:
        """The ``k`` most popular aids of a type (or a pseudo-type of
        :mod:`online_models.popularity`)."""


@dataclass(frozen=True, slots=True)
class Lists:
    """The three recommendation lists, best first."""

    clicks: list[int]
    carts: list[int]
    orders: list[int]


def _recency_weights(n: int) -> list[float]:
    """2^0.1 − 1 … 2^1 − 1, oldest to newest (``np.logspace(0.1, 1, n, base=2) − 1``)."""
    if n == 1:
        return [1.0]
    return [2.0 ** (0.1 + 0.9 * i / (n - 1)) - 1.0 for i in range(n)]


def _weighted_history(events: Sequence[tuple[int, int, int]]) -> dict[int, float]:
    scores: dict[int, float] = {}
    for (aid, _, etype), w in zip(events, _recency_weights(len(events)), strict=True):
        scores[aid] = scores.get(aid, 0.0) + w * TYPE_MULTIPLIERS[etype]
    return scores


def _most_common(scores: dict[int, float], k: int) -> list[int]:
    """Top ``k`` by score; ties keep first-seen order (as ``Counter.most_common`` does)."""
    return sorted(scores, key=scores.__getitem__, reverse=True)[:k]


def _fill(result: list[int], candidates: Iterable[int], k: int) -> list[int]:
    seen = set(result)
    for aid in candidates:
        if len(result) >= k:
            break
        if aid not in seen:
            seen.add(aid)
            result.append(aid)
    return result


def recommend(
    events: Sequence[tuple[int, int, int]],
    covis: Neighbours,
    popularity: Popular,
    k: int = 20,
) -> Lists:
    """Lists for a session whose recent events are ``events`` as (aid, ts, type), oldest first."""
    unique = list(dict.fromkeys(aid for aid, _, _ in reversed(events)))
    neighbours, buys = _reads(unique, events, k)  # the rows read (read_items)
    clicks = _clicks_list(events, unique, neighbours, covis, k)
    buy_list = _buys_list(events, unique, neighbours, buys, covis, k)
    # Fill from the objective's own popularity first, then the other types' (orders are rare:
    # early in a stream fewer than k items have been ordered at all), then every item known
    # (read only when the decayed counts fall short, e.g. after a clock jump).
    def popular(*types: int) -> Iterator[int]:
        return chain.from_iterable(popularity.top(t, 2 * k) for t in (*types, KNOWN))

    return Lists(
        clicks=_fill(clicks, popular(CLICKS, CARTS, ORDERS), k),
        carts=_fill(list(buy_list), popular(CARTS, ORDERS, CLICKS), k),
        orders=_fill(buy_list, popular(ORDERS, CARTS, CLICKS), k),
    )


def shelf(popularity: Popular, k: int) -> list[int]:
    """The storefront's ``k`` items: the most popular of all types, then every item known;
    aids ``0..k-1`` before any event (a synthetic catalog names every aid)."""
    listed = _fill(popularity.top(ALL_TYPES, k), popularity.top(KNOWN, 2 * k), k)
    return listed or list(range(k))


def read_items(events: Sequence[tuple[int, int, int]], k: int = 20) -> tuple[list[int], list[int]]:
    """What :func:`recommend` reads from the matrices for these events, most recent first: the
    items whose clicks and carts_orders rows it reads (the session's distinct items while
    fewer than ``k``; none beyond, when the lists are the session's own) and those whose
    buy2buy rows it reads (every item carted or ordered). The one description of those reads:
    :func:`recommend` reads exactly these rows, :func:`rows_needed` names them."""
    return _reads(list(dict.fromkeys(aid for aid, _, _ in reversed(events))), events, k)


def _reads(unique: list[int], events: Sequence[tuple[int, int, int]],
           k: int) -> tuple[list[int], list[int]]:
    buys = list(dict.fromkeys(aid for aid, _, etype in reversed(events) if etype != CLICKS))
    return (unique if len(unique) < k else []), buys


def rows_needed(events: Sequence[tuple[int, int, int]], k: int = 20) -> list[tuple[str, int]]:
    """The (matrix, aid) rows :func:`recommend` reads for these events: a store fetches them
    in one round trip instead of one per row."""
    neighbours, buys = read_items(events, k)
    needed = [("buy2buy", aid) for aid in buys]
    return needed + [(matrix, aid) for aid in neighbours for matrix in ("clicks", "carts_orders")]


def _clicks_list(
    events: Sequence[tuple[int, int, int]], unique: list[int], neighbours: list[int],
    covis: Neighbours, k: int
) -> list[int]:
    if len(unique) >= k:
        return _most_common(_weighted_history(events), k)
    # One flat list, then counted in C: nested generators cost a Python frame resume per
    # neighbour. Same elements in the same order, so ties rank as before.
    counted = Counter([b for aid in neighbours for b, _ in covis.top("clicks", aid, k)])
    own = set(unique)
    extra = [b for b, _ in counted.most_common(k) if b not in own]
    return unique + extra[: k - len(unique)]


def _buys_list(
    events: Sequence[tuple[int, int, int]],
    unique: list[int],
    neighbours: list[int],
    buys: list[int],
    covis: Neighbours,
    k: int,
) -> list[int]:
    buy2buy = [b for aid in buys for b, _ in covis.top("buy2buy", aid, k)]
    if len(unique) >= k:
        scores = _weighted_history(events)
        for b in buy2buy:
            scores[b] = scores.get(b, 0.0) + BUY2BUY_BONUS
        return _most_common(scores, k)
    carts_orders = [b for aid in neighbours for b, _ in covis.top("carts_orders", aid, k)]
    counted = Counter(carts_orders + buy2buy)
    own = set(unique)
    extra = [b for b, _ in counted.most_common(k) if b not in own]
    return unique + extra[: k - len(unique)]

