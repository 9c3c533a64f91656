"""Why an item is in a shopper's list: the candidate source and the item behind it.

A shop page shows "Bought with X" or "Popular now" under each recommendation. The reason is
read from the rows the lists themselves were made from (the session's own items, its items'
co-visitation and successor rows, popularity), so explaining costs no store round trip: the
rows are the ones the recipe or the candidate builder has just read (and cached).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from online_models.candidates import SimilarRows, SuccessorRows, candidate_rows
from online_models.recommend import Neighbours, Popular, rows_needed
from online_models.rerank_config import RerankConfig
from online_models.types import CARTS, CLICKS, ORDERS

#: Sources, in the words the page turns into text.
YOU = {CLICKS: "you_viewed", CARTS: "you_carted", ORDERS: "you_bought"}
MATRIX_SOURCE = {"clicks": "viewed_with", "carts_orders": "bought_with",
                 "buy2buy": "bought_with", "successors": "viewed_after"}
SOURCES = (*YOU.values(), "viewed_with", "bought_with", "viewed_after", "sessions_like_yours",
           "sequence_pick", "similar", "popular_now", "popular")
#: Per objective, which rows explain best when an item is in several (a cart list's item
#: "bought with X" says more than "viewed with X").
PREFERENCE = {
    "clicks": ("clicks", "successors", "carts_orders", "buy2buy"),
    "carts": ("buy2buy", "carts_orders", "clicks", "successors"),
    "orders": ("buy2buy", "carts_orders", "clicks", "successors"),
}


class Reason(NamedTuple):
    source: str
    via: int | None

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, "via": self.via}


_OWN = {etype: Reason(source, None) for etype, source in YOU.items()}
_LIKE_YOURS, _PICKED, _SIMILAR, _POPULAR_NOW, _POPULAR = (
    Reason(s, None) for s in ("sessions_like_yours", "sequence_pick", "similar", "popular_now",
                              "popular"))


def _interner() -> Callable[[str, int | None], Reason]:
    """One :class:`Reason` object per (source, via): a list's items share a few, and a
    watched session's lists are kept per connection."""
    made: dict[tuple[str, int | None], Reason] = {}

    def once(source: str, via: int | None) -> Reason:
        reason = made.get((source, via))
        if reason is None:
            reason = made[(source, via)] = Reason(source, via)
        return reason

    return once


class Similar(Protocol):
    def top(self, aids: Sequence[int], k: int) -> list[tuple[int, float]]: ...


def _rows_by_item(events: Sequence[tuple[int, int, int]], config: RerankConfig | None,
                  k: int) -> tuple[list[tuple[str, int]], int]:
    """The rows the lists were made from, and how many neighbours of each were read."""
    if config is None:
        return rows_needed(events, k), k
    return candidate_rows(events, config), config.neighbours


def explain(lists: dict[str, list[int]], events: Sequence[tuple[int, int, int]],
            covis: Neighbours, popularity: Popular, k: int = 20,
            config: RerankConfig | None = None, successors: SuccessorRows | None = None,
            factors: Similar | None = None, similar_sessions: SimilarRows | None = None,
            session: int | None = None, picks: Similar | None = None
            ) -> dict[str, list[Reason]]:
    """One reason per listed item, for lists made from a session whose recent events are
    ``events`` (oldest first) by the recipe (``config`` None) or the re-rankers
    (``similar_sessions``: the sessions like ``session`` that they read; ``picks``: the
    sequence model they read)."""
    last_type: dict[int, int] = {}
    for aid, _, etype in events:
        last_type[aid] = max(etype, last_type.get(aid, CLICKS))  # bought beats carted
    recency = {aid: r for r, aid in enumerate(dict.fromkeys(a for a, _, _ in reversed(events)))}
    rows, size = _rows_by_item(events, config, k)
    # Per matrix, each neighbour's via: the most recent session item whose row holds it.
    via: dict[str, dict[int, int]] = {m: {} for m in MATRIX_SOURCE}
    for matrix, aid in sorted(rows, key=lambda row: recency.get(row[1], len(recency))):
        found = via[matrix]
        for b, _ in covis.top(matrix, aid, size):
            found.setdefault(b, aid)
    if successors is not None and config is not None:
        for aid in list(recency)[:config.successor_items]:
            for b, _ in successors.top(aid, size):
                via["successors"].setdefault(b, aid)
    aids = [a for a, _, _ in events]
    like_yours = ({b for b, _ in similar_sessions.top(aids, session, size)}
                  if similar_sessions is not None and config is not None and events else set())
    similar = ({b for b, _ in factors.top(aids, size)}
               if factors is not None and events else set())
    picked = ({b for b, _ in picks.top(aids, config.sequence_picks)}
              if picks is not None and config is not None and events else set())
    trending: set[int] = set()
    for etype in (CLICKS, CARTS, ORDERS):
        trending.update(popularity.top(etype, 2 * k))

    once = _interner()

    def reason(aid: int, objective: str) -> Reason:
        own = last_type.get(aid)
        if own is not None:
            return _OWN[own]
        for matrix in PREFERENCE[objective]:
            behind = via[matrix].get(aid)
            if behind is not None:
                return once(MATRIX_SOURCE[matrix], behind)
        if aid in like_yours:
            return _LIKE_YOURS
        if aid in picked:
            return _PICKED
        if aid in similar:
            return _SIMILAR
        return _POPULAR_NOW if aid in trending else _POPULAR

    return {objective: [reason(aid, objective) for aid in aids]
            for objective, aids in lists.items()}


def reasons_to_json(why: dict[str, list[Reason]]) -> dict[str, list[dict[str, object]]]:
    return {objective: [r.to_json() for r in reasons] for objective, reasons in why.items()}


def reasons_from_json(obj: object) -> dict[str, list[Reason]] | None:
    """Reasons as :func:`reasons_to_json` wrote them (None when absent or not readable)."""
    if not isinstance(obj, dict):
        return None
    once = _interner()
    try:
        return {str(objective): [once(str(r["source"]), None if r["via"] is None
                                      else int(r["via"]))
                                 for r in reasons]
                for objective, reasons in obj.items()}
    except (KeyError, TypeError, ValueError):
        return None
