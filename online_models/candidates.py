"""The candidates of a session and their features: what the re-rankers read.

Candidates come from the session's own items, the rows of its most recent items in the three
matrices and in :class:`~online_models.successors.Successors`, optionally the items of
sessions like it (:mod:`online_models.similar_sessions`), a trained sequence model's picks
(:mod:`online_models.sequence.source`) and the factorisation, and the popular items. Each
objective first ranks them by its own hand-made **prior**, from what that objective is about;
its best ``depth`` (the shortlist) get sparse indicator features that the objective's model
(:mod:`online_models.rerank`) scores:

* **clicks**: the next click. Own items most recent first (shoppers go back), then the
  neighbours of the last items in the clicks matrix and their successors.
* **carts**: everything carted later. Own items by recency- and type-weighted history (a
  cart is mostly an item just viewed), weighed against neighbours in all four sources (the
  three matrices and the successors): a strong neighbour of the last items can pass an item
  viewed once, long ago.
* **orders**: everything ordered later. Items carted and not yet ordered first, most
  recently carted first (an order buys from the cart); then own items by history, weighing
  more against neighbours than for carts; neighbours count more the more often their item
  is ordered when viewed.

The priors were chosen by the recall each gives its own objective and the others
(``benchmarks/priors.py``; docs/quality.md has the figures).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from online_models.popularity import KNOWN
from online_models.recommend import Neighbours, _weighted_history
from online_models.rerank_config import RerankConfig
from online_models.types import CARTS, CLICKS, ORDERS

#: Own items (clicks) and open carts (orders) come before every neighbour in their prior.
_OWN: Final = 1e6
RANKS: Final = (1, 2, 3, 5, 8, 12, 20, 40)
_RATIOS: Final = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5)
_LENGTHS: Final = (2, 3, 4, 6, 9, 14, 20, 30)
_PACE_S: Final = (10, 30, 60, 180, 600, 3600, 86_400)
_POP: Final = tuple(2.0**i for i in range(0, 16, 2))


def _keys(name: str, edges: Sequence[float], none: bool = False) -> list[str]:
    """Indicator names per bucket (index ``-1``: absent), built once: the hot path indexes."""
    return [f"{name}={b}" for b in range(len(edges) + 1)] + ([f"{name}=none"] if none else [])


# Own-rank buckets are 1-based in the keys below; 0 is "not in the session".
_OWN_KEYS: Final = ["own=none"] + [f"own={b}" for b in range(len(RANKS) + 1)]
_OWN_LEN: Final = [[f"{own}|len={n}" for own in _OWN_KEYS] for n in range(len(_LENGTHS) + 1)]
_LAST_PACE: Final = [f"last|pace={b}" for b in range(len(_PACE_S) + 1)]
_COUNT_KEYS: Final = _keys("count", RANKS)
_LAST_CLICKS: Final = _keys("last_clicks", RANKS, none=True)
_LAST_SUCCESSOR: Final = _keys("last_successor", RANKS, none=True)
_CLICKS_NB: Final = _keys("clicks_nb", _RATIOS)
_SUCCESSOR_NB: Final = _keys("successor_nb", _RATIOS)
_BUYS_NB: Final = _keys("buys_nb", _RATIOS)
_POP_KEYS: Final = _keys("pop", _POP)
_CONVERSION: Final = _keys("conversion", _RATIOS)
_FACTOR_KEYS: Final = _keys("factors", RANKS)
_SIMILAR_NB: Final = _keys("similar_nb", _RATIOS)
_SEQUENCE_KEYS: Final = _keys("sequence", RANKS)
#: A factorisation candidate's prior: below any co-visitation neighbour's usual score, so it
#: fills where the matrices know nothing and the model learns how much more it is worth.
FACTOR_PRIOR: Final = 0.05


class SuccessorRows(Protocol):
    def top(self, aid: int, k: int = 20) -> list[tuple[int, int]]: ...


class SimilarRows(Protocol):
    def top(self, events: Sequence[int], session: int | None = None,
            k: int = 20) -> list[tuple[int, float]]: ...


class Factors(Protocol):
    def top(self, recent: Sequence[int], k: int = 20) -> list[tuple[int, float]]: ...


class PopularityScores(Protocol):
    def top(self, etype: int, k: int = 20) -> list[int]: ...

    def score(self, etype: int, aid: int) -> int: ...


@dataclass(slots=True)
class Candidates:
    """Everything the three models need about one session's candidates.

    Only each objective's ``depth`` best candidates under the prior (the *shortlist*) get
    features and a model score; the rest keep the prior's order below them.
    """

    aids: list[int]
    """The shortlist: the union of the objectives' top ``depth``."""
    keys: list[list[str]]
    """Per shortlisted candidate, its active indicator features (shared by the objectives)."""
    tops: tuple[list[int], list[int], list[int]]
    """Per objective, its top ``depth`` under the prior as indices into ``aids``, best first."""
    prior: tuple[list[int], list[int], list[int]]
    """Per objective, the prior's order of all candidates, for the tail."""


def read_items(events: Sequence[tuple[int, int, int]],
               config: RerankConfig) -> tuple[list[int], list[int]]:
    """What the candidates of these events (oldest first) read from the matrices, most recent
    first: the last ``history`` distinct items (their clicks and carts_orders rows) and every
    item carted or ordered (its buy2buy row). The one description of those reads:
    :func:`build_candidates` reads exactly these rows, :func:`candidate_rows` names them."""
    return _read_items(list(dict.fromkeys(aid for aid, _, _ in reversed(events))), events, config)


def _read_items(unique: list[int], events: Sequence[tuple[int, int, int]],
                config: RerankConfig) -> tuple[list[int], list[int]]:
    """:func:`read_items` from the session's distinct items, most recent first, which
    :func:`build_candidates` has already listed."""
    bought = list(dict.fromkeys(aid for aid, _, t in reversed(events) if t != CLICKS))
    return unique[:config.history], bought


def candidate_rows(events: Sequence[tuple[int, int, int]],
                   config: RerankConfig) -> list[tuple[str, int]]:
    """The (matrix, aid) rows :func:`build_candidates` reads for these events (oldest first),
    so that a store can fetch them in one round trip."""
    recent, bought = read_items(events, config)
    rows = [(matrix, aid) for aid in recent for matrix in ("clicks", "carts_orders")]
    return rows + [("buy2buy", aid) for aid in bought]


def build_candidates(events: Sequence[tuple[int, int, int]], covis: Neighbours,
                     popularity: PopularityScores, successors: SuccessorRows | None,
                     config: RerankConfig, k: int = 20,
                     factors: Factors | None = None, buying: bool = True,
                     similar: SimilarRows | None = None,
                     session: int | None = None, sequence: Factors | None = None
                     ) -> Candidates:
    """The candidates of a session whose recent events are ``events`` (oldest first).

    They depend on the session's state only, never on the clock or on when the next event
    comes, so the lists a client was served are exactly the lists the next event judges.
    ``buying=False`` leaves out what only the carts and orders models read (their priors and
    shortlists): a click judged against the clicks list alone costs less, and its clicks
    shortlist, features and scores are the same. ``sequence``: a trained sequence model's
    picks (:mod:`online_models.sequence.source`).
    """
    n = len(events)
    unique = list(dict.fromkeys(aid for aid, _, _ in reversed(events)))
    own_rank = {aid: r for r, aid in enumerate(unique)}
    counts = Counter(aid for aid, _, _ in events)
    carted = {aid for aid, _, t in events if t == CARTS}
    ordered = {aid for aid, _, t in events if t == ORDERS}

    size = config.neighbours
    clicks_nb: dict[int, float] = {}
    co_nb: dict[int, float] = {}
    b2b_nb: dict[int, float] = {}
    successor_nb: dict[int, float] = {}
    last_clicks: dict[int, int] = {}
    last_successor: dict[int, int] = {}
    recent, bought = _read_items(unique, events, config)
    for j, a in enumerate(recent):
        w = 1.0 / (j + 1)
        _add_row(clicks_nb, covis.top("clicks", a, size), w, last_clicks if j == 0 else None)
        _add_row(co_nb, covis.top("carts_orders", a, size), w, None)
        if successors is not None and j < config.successor_items:
            _add_row(successor_nb, successors.top(a, size), w,
                     last_successor if j == 0 else None)
    for a in bought:
        _add_row(b2b_nb, covis.top("buy2buy", a, size), 1.0, None)
    similar_nb: dict[int, float] = {}
    if similar is not None:
        _add_row(similar_nb, similar.top([aid for aid, _, _ in events], session, size),
                 config.similar_weight, None)
    buys_nb = dict(co_nb)
    for a, v in b2b_nb.items():
        buys_nb[a] = buys_nb.get(a, 0.0) + v

    factor_rank: dict[int, int] = {}
    if factors is not None:
        top = factors.top([aid for aid, _, _ in events], size)
        factor_rank = {aid: r for r, (aid, _) in enumerate(top)}
    sequence_rank: dict[int, int] = {}
    sequence_nb: dict[int, float] = {}
    if sequence is not None and events:
        picks = sequence.top([aid for aid, _, _ in events], config.sequence_picks)
        sequence_rank = {aid: r for r, (aid, _) in enumerate(picks)}
        weight = config.sequence_weight
        sequence_nb = {aid: weight / (1 + r) for aid, r in sequence_rank.items()}
    popular = {t: popularity.top(t, k) for t in (CLICKS, CARTS, ORDERS)}
    pool = dict.fromkeys(unique)
    sources: list[Iterable[int]] = [clicks_nb, successor_nb, similar_nb, sequence_nb, buys_nb,
                                    factor_rank, *popular.values()]
    for source in sources:
        pool.update(dict.fromkeys(source))
    if len(pool) < k:  # the decayed counts fell short (a young stream, a clock jump)
        pool.update(dict.fromkeys(popularity.top(KNOWN, 2 * k)))
    aids = list(pool)

    depth = config.depth
    fill = max(k, depth) + k
    near = _merged(clicks_nb, successor_nb, similar_nb, sequence_nb)
    priors = [_click_prior(aids, own_rank, near, *_ties(popular[CLICKS], factor_rank, k))]
    if buying:
        priors += _buy_priors(aids, events, _merged(near, co_nb, b2b_nb), factor_rank,
                              popular, popularity, k)
    orders = [_order(prior, fill) for prior in priors]
    orders += [[]] * (3 - len(orders))
    shortlist = list(dict.fromkeys(i for order in orders for i in order[:depth]))
    position = {i: j for j, i in enumerate(shortlist)}
    tops = [[position[i] for i in order[:depth]] for order in orders]

    length = bisect_right(_LENGTHS, n)
    own_len = _OWN_LEN[length]
    # The shopper's pace: the time between the last two events (known when serving).
    last_key = _LAST_PACE[bisect_right(_PACE_S, (events[-1][1] - events[-2][1]) / 1000)
                          if n > 1 else 0]
    last = events[-1][0] if events else None
    score = popularity.score
    keys: list[list[str]] = []
    for i in shortlist:
        a = aids[i]
        r = own_rank.get(a)
        if r is None:
            row = ["own=none", own_len[0]]
        else:
            b = bisect_right(RANKS, r) + 1
            row = [_OWN_KEYS[b], own_len[b], _COUNT_KEYS[bisect_right(RANKS, counts[a])]]
            if a == last:
                row.append(last_key)
            if a in carted:
                row.append("carted")
            if a in ordered:
                row.append("ordered")
        lc = last_clicks.get(a)
        ls = last_successor.get(a)
        clicks_pop = score(CLICKS, a)
        row += (_LAST_CLICKS[bisect_right(RANKS, lc) if lc is not None else -1],
                _LAST_SUCCESSOR[bisect_right(RANKS, ls) if ls is not None else -1],
                _CLICKS_NB[bisect_right(_RATIOS, clicks_nb.get(a, 0.0))],
                _SUCCESSOR_NB[bisect_right(_RATIOS, successor_nb.get(a, 0.0))],
                _BUYS_NB[bisect_right(_RATIOS, buys_nb.get(a, 0.0))],
                _POP_KEYS[bisect_right(_POP, clicks_pop / 4096)])
        if similar is not None:
            row.append(_SIMILAR_NB[bisect_right(_RATIOS, similar_nb.get(a, 0.0))])
        fr = factor_rank.get(a)
        if fr is not None:
            row.append(_FACTOR_KEYS[bisect_right(RANKS, fr)])
        sr = sequence_rank.get(a)
        if sr is not None:
            row.append(_SEQUENCE_KEYS[bisect_right(RANKS, sr)])
        if clicks_pop:
            row.append(_CONVERSION[bisect_right(_RATIOS, score(CARTS, a) / clicks_pop)])
        keys.append(row)
    tails = [[aids[i] for i in order[:fill]] for order in orders]
    return Candidates([aids[i] for i in shortlist], keys, (tops[0], tops[1], tops[2]),
                      (tails[0], tails[1], tails[2]))


def _click_prior(aids: list[int], own_rank: dict[int, int], near: dict[int, float],
                 tie: dict[int, float], no_tie: float) -> list[float]:
    """Own items most recent first, then clicks neighbours, successors and similar sessions'
    items (``near``); popularity and the factorisation only break ties (``tie``)."""
    own_get, near_get, tie_get = own_rank.get, near.get, tie.get
    return [_OWN - r if (r := own_get(a)) is not None else near_get(a, 0.0) + tie_get(a, no_tie)
            for a in aids]


def _ties(popular: list[int], factor_rank: dict[int, int], k: int) -> tuple[dict[int, float],
                                                                           float]:
    """The tie-breakers of candidates that are popular or factorisation picks, and of the
    rest: a popular item's rank counts below any neighbour score, a factorisation pick's
    as :data:`FACTOR_PRIOR` (the priors' shared tail)."""
    pop = {a: 1e-3 / (2 + r) for r, a in enumerate(popular)}
    factor = {a: FACTOR_PRIOR / (1 + r) for a, r in factor_rank.items()}
    pop_none, factor_none = 1e-3 / (2 + k), FACTOR_PRIOR / (1 + (1 << 20))
    tie = {a: pop.get(a, pop_none) + factor.get(a, factor_none) for a in pop.keys() | factor}
    return tie, pop_none + factor_none


def _merged(first: dict[int, float], *rest: dict[int, float]) -> dict[int, float]:
    """Scores summed per item: one pass over each source, not one lookup per candidate in
    each."""
    total = dict(first)
    get = total.get
    for scores in rest:
        for a, v in scores.items():
            total[a] = get(a, 0.0) + v
    return total


#: How much an own item's recency- and type-weighted history counts against neighbour scores
#: (a row's neighbours sum to at most about 2.3 per matrix) in the carts and orders priors.
#: Chosen on generated sessions (seed 0) and checked on others (seed 1), docs/quality.md.
_CART_OWN: Final = 3.0
_ORDER_OWN: Final = 5.0


def _buy_priors(aids: list[int], events: Sequence[tuple[int, int, int]],
                near: dict[int, float], factor_rank: dict[int, int],
                popular: dict[int, list[int]], popularity: PopularityScores,
                k: int) -> list[list[float]]:
    """The carts and the orders priors (the module docstring says what each leans on);
    ``near``: each candidate's neighbour scores in all sources, summed.

    Unlike the clicks prior, own items do not all come first: an item viewed once, long ago,
    is less likely to be carted than a strong neighbour of the last items.
    """
    history = _weighted_history(events)
    open_carts: dict[int, int] = {}  # carted and not ordered since: position of the cart
    for position, (aid, _, etype) in enumerate(events):
        if etype == CARTS:
            open_carts[aid] = position
        elif etype == ORDERS:
            open_carts.pop(aid, None)
    cart_tie, cart_none = _ties(popular[CARTS], factor_rank, k)
    order_tie, order_none = _ties(popular[ORDERS], factor_rank, k)
    score = popularity.score
    near_get, history_get = near.get, history.get
    carts: list[float] = []
    orders: list[float] = []
    for a in aids:
        v = near_get(a, 0.0)
        h = history_get(a)
        if h is not None:
            carts.append(_CART_OWN * h + v)
            cart = open_carts.get(a)
            orders.append(3 * _OWN + cart if cart is not None else _ORDER_OWN * h + v)
            continue
        carts.append(v + cart_tie.get(a, cart_none))
        clicked = score(CLICKS, a)
        bought = min(1.0, score(ORDERS, a) / clicked) if clicked else 0.0
        orders.append(v * (1.0 + bought) + order_tie.get(a, order_none))
    return [carts, orders]


def _add_row(scores: dict[int, float], row: Sequence[tuple[int, float]], weight: float,
             ranks: dict[int, int] | None) -> None:
    if not row or row[0][1] <= 0:  # nothing, or weights decayed to zero: no signal left
        return
    scale = weight / row[0][1]
    for r, (b, v) in enumerate(row):
        scores[b] = scores.get(b, 0.0) + v * scale
        if ranks is not None:
            ranks[b] = r


def _order(scores: list[float], n: int) -> list[int]:
    """The ``n`` best indices by score descending (ties: first seen first). A full sort: for
    a few hundred candidates it beats ``heapq.nlargest`` of 50."""
    return sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:n]

