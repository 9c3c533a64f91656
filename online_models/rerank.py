"""Candidates, features and one River re-ranker per objective, learned test-then-train.

The co-visitation recipe (:mod:`online_models.recommend`) ranks by fixed rules. Here the same
signals and a few more (successors, popularity, conversion, time) become features of each
candidate, and one logistic regression per objective (clicks, carts, orders) learns, from what
shoppers do next, how much each is worth:

1. **Candidates**: the session's own items, the rows of its most recent items in the three
   matrices and in :class:`~online_models.successors.Successors`, and the popular items.
2. **Prior**: each objective's candidates are first ranked by a hand-made score (own items
   first, most recent first for clicks and by recency- and type-weighted history for carts and
   orders; then neighbours weighted by how recent the item they came from is). The log of that
   rank is the feature ``prior``.
3. **Features**: sparse indicators of bucketed values (the rank of the candidate in the
   session, in the last item's rows, its neighbour scores, popularity, conversion, session
   length, the shopper's pace and their useful crosses): a linear model over indicators is a
   generalised additive model, which ranks far better than the raw values would.
4. **Learning**, test then train: a click labels the candidates built just before it; a cart
   or an order labels a state drawn from the session's earlier ones (:meth:`Reranker.learn`
   says why). The aid is the positive, a uniform sample of the shortlist the negatives.
5. **Serving** reads a *snapshot* of each model's weights, taken every ``snapshot_every``
   learned events and swapped in whole: serving never sees a half-updated model, and a
   snapshot is a plain dict that a store can save and another process load
   (:meth:`Reranker.snapshot_bytes`). The distributed runtime takes snapshots on a clock
   instead, saves them to Redis and every worker and web node swaps in the newest
   (``docs/production.md``).

The model starts from the prior (its weight is 1, the others 0), so an untrained re-ranker
serves the hand-made ranking and learning only moves it where the data says so.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import orjson
from river import linear_model, optim

from online_models.popularity import KNOWN
from online_models.recommend import Lists, Neighbours, _weighted_history
from online_models.types import CARTS, CLICKS, ORDERS, TYPE_NAMES

OBJECTIVES: Final = TYPE_NAMES
#: A candidate's own items come before every neighbour in the prior.
_OWN: Final = 1e6
_RANKS: Final = (1, 2, 3, 5, 8, 12, 20, 40)
_RATIOS: Final = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5)
_LENGTHS: Final = (2, 3, 4, 6, 9, 14, 20, 30)
_PACE_S: Final = (10, 30, 60, 180, 600, 3600, 86_400)
_POP: Final = tuple(2.0**i for i in range(0, 16, 2))
#: Per prior rank: the ``prior`` feature and the rank's indicator (precomputed: hot path).
_PRIOR: Final = [-math.log1p(r) for r in range(1024)]
_RANK_KEYS: Final = [f"rank={bisect_right(_RANKS, r)}" for r in range(1024)]


def _keys(name: str, edges: Sequence[float], none: bool = False) -> list[str]:
    """Indicator names per bucket (index ``-1``: absent), built once: the hot path indexes."""
    return [f"{name}={b}" for b in range(len(edges) + 1)] + ([f"{name}=none"] if none else [])


# Own-rank buckets are 1-based in the keys below; 0 is "not in the session".
_OWN_KEYS: Final = ["own=none"] + [f"own={b}" for b in range(len(_RANKS) + 1)]
_OWN_LEN: Final = [[f"{own}|len={n}" for own in _OWN_KEYS] for n in range(len(_LENGTHS) + 1)]
_LAST_PACE: Final = [f"last|pace={b}" for b in range(len(_PACE_S) + 1)]
_COUNT_KEYS: Final = _keys("count", _RANKS)
_LAST_CLICKS: Final = _keys("last_clicks", _RANKS, none=True)
_LAST_SUCCESSOR: Final = _keys("last_successor", _RANKS, none=True)
_CLICKS_NB: Final = _keys("clicks_nb", _RATIOS)
_SUCCESSOR_NB: Final = _keys("successor_nb", _RATIOS)
_BUYS_NB: Final = _keys("buys_nb", _RATIOS)
_POP_KEYS: Final = _keys("pop", _POP)
_CONVERSION: Final = _keys("conversion", _RATIOS)
_FACTOR_KEYS: Final = _keys("factors", _RANKS)
#: A factorisation candidate's prior: below any co-visitation neighbour's usual score, so it
#: fills where the matrices know nothing and the model learns how much more it is worth.
_FACTOR_PRIOR: Final = 0.05


class SuccessorRows(Protocol):
    def top(self, aid: int, k: int = 20) -> list[tuple[int, int]]: ...


class Factors(Protocol):
    def top(self, recent: Sequence[int], k: int = 20) -> list[tuple[int, float]]: ...


class PopularityScores(Protocol):
    def top(self, etype: int, k: int = 20) -> list[int]: ...

    def score(self, etype: int, aid: int) -> int: ...


@dataclass(frozen=True)
class RerankConfig:
    """What the re-ranker reads and how it learns."""

    neighbours: int = 20
    """Entries read from each matrix row."""
    depth: int = 30
    """Candidates per objective the model re-ranks (the prior's best); deeper ones follow in
    the prior's order."""
    history: int = 5
    """The most recent distinct items whose rows are read (10 gave the same figures on
    YOOCHOOSE at twice the cost: the 1/position weights make older rows count little)."""
    successor_items: int = 3
    """The most recent distinct items whose successors are read."""
    negatives: int = 8
    """Negatives per learned event, drawn uniformly from the shortlist. Not the model's own
    best wrong candidates ("hard" negatives): those sit at the top of the prior, so the
    sample would teach the model that a good prior rank predicts *no* click."""
    learning_rate: float = 0.005
    buy_learning_rate: float | None = None
    """The carts and orders models' rate (None: ``learning_rate``)."""
    reservoir_sessions: int = 100_000
    """Sessions whose earlier state is kept for the buying models (least recent dropped)."""
    snapshot_every: int = 100
    """Learned events of an objective between two snapshots of its model; 0: only when the
    owner calls :meth:`Reranker.swap` (the distributed runtime, which swaps on a clock)."""
    sample_percent: int = 100
    """Share of sessions (by a hash of the id, so every process picks the same ones) whose
    clicks are judged and learned from. Carts and orders are always: they are rare (a tenth
    of the events), so they cost little, and the buying models need every one of them."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.sample_percent <= 100:
            raise ValueError("sample_percent must be in 0..100")
        if self.snapshot_every < 0:
            raise ValueError("snapshot_every must be 0 (never by itself) or more")
        if min(self.neighbours, self.history) < 1:
            raise ValueError("neighbours and history must be at least 1")
        if not 1 <= self.depth <= 1000:
            raise ValueError("depth must be in 1..1000")


def _bucket(value: float, edges: Sequence[float]) -> int:
    return bisect_right(edges, value)


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
    prior: tuple[list[int], list[int]]
    """The prior's order of all candidates (clicks; carts and orders), for the tail."""


def candidate_rows(events: Sequence[tuple[int, int, int]],
                   config: RerankConfig) -> list[tuple[str, int]]:
    """The (matrix, aid) rows :func:`build_candidates` reads for these events (oldest first),
    so that a store can fetch them in one round trip."""
    unique = list(dict.fromkeys(aid for aid, _, _ in reversed(events)))[:config.history]
    rows = [(matrix, aid) for aid in unique for matrix in ("clicks", "carts_orders")]
    rows += [("buy2buy", aid) for aid in dict.fromkeys(
        aid for aid, _, t in reversed(events) if t != CLICKS)]
    return rows


def build_candidates(events: Sequence[tuple[int, int, int]], covis: Neighbours,
                     popularity: PopularityScores, successors: SuccessorRows | None,
                     config: RerankConfig, k: int = 20,
                     factors: Factors | None = None, buying: bool = True) -> Candidates:
    """The candidates of a session whose recent events are ``events`` (oldest first).

    They depend on the session's state only, never on the clock or on when the next event
    comes, so the lists a client was served are exactly the lists the next event judges.
    ``buying=False`` leaves out what only the carts and orders models read (their prior and
    shortlist): a click judged against the clicks list alone costs less, and its clicks
    shortlist, features and scores are the same.
    """
    n = len(events)
    unique = list(dict.fromkeys(aid for aid, _, _ in reversed(events)))
    own_rank = {aid: r for r, aid in enumerate(unique)}
    counts = Counter(aid for aid, _, _ in events)
    carted = {aid for aid, _, t in events if t == CARTS}
    ordered = {aid for aid, _, t in events if t == ORDERS}
    history = _weighted_history(events)

    size = config.neighbours
    clicks_nb: dict[int, float] = {}
    buys_nb: dict[int, float] = {}
    successor_nb: dict[int, float] = {}
    last_clicks: dict[int, int] = {}
    last_successor: dict[int, int] = {}
    for j, a in enumerate(unique[:config.history]):
        w = 1.0 / (j + 1)
        _add_row(clicks_nb, covis.top("clicks", a, size), w, last_clicks if j == 0 else None)
        _add_row(buys_nb, covis.top("carts_orders", a, size), w, None)
        if successors is not None and j < config.successor_items:
            _add_row(successor_nb, successors.top(a, size), w,
                     last_successor if j == 0 else None)
    for a in dict.fromkeys(aid for aid, _, t in reversed(events) if t != CLICKS):
        _add_row(buys_nb, covis.top("buy2buy", a, size), 1.0, None)

    factor_rank: dict[int, int] = {}
    if factors is not None:
        top = factors.top([aid for aid, _, _ in events], size)
        factor_rank = {aid: r for r, (aid, _) in enumerate(top)}
    popular = {t: popularity.top(t, k) for t in (CLICKS, CARTS, ORDERS)}
    pool = dict.fromkeys(unique)
    sources: list[Iterable[int]] = [clicks_nb, successor_nb, buys_nb, factor_rank,
                                    *popular.values()]
    for source in sources:
        pool.update(dict.fromkeys(source))
    if len(pool) < k:  # the decayed counts fell short (a young stream, a clock jump)
        pool.update(dict.fromkeys(popularity.top(KNOWN, 2 * k)))
    aids = list(pool)

    # The priors: own items first, then neighbours; popularity only breaks ties.
    pop_rank = {aid: r for r, aid in enumerate(popular[CLICKS])}
    buy_pop = {aid: r for r, aid in enumerate(popular[CARTS] + popular[ORDERS])}
    click_prior: list[float] = []
    buy_prior: list[float] = []
    clicks_get, successor_get, buys_get = clicks_nb.get, successor_nb.get, buys_nb.get
    factor_get = factor_rank.get
    for a in aids:
        clicks_score = clicks_get(a, 0.0)
        near = clicks_score + successor_get(a, 0.0)
        factor = _FACTOR_PRIOR / (1 + factor_get(a, 1 << 20))
        r = own_rank.get(a)
        click_prior.append(_OWN - r if r is not None
                           else near + 1e-3 / (2 + pop_rank.get(a, k)) + factor)
        if buying:
            h = history.get(a)
            buy_prior.append(_OWN + h if h is not None
                             else buys_get(a, 0.0) + clicks_score + successor_get(a, 0.0)
                             + 1e-3 / (2 + buy_pop.get(a, k)) + factor)
    depth = config.depth
    fill = max(k, depth) + k
    click_order = _order(click_prior, fill)
    buy_order = _order(buy_prior, fill) if buying else []
    shortlist = list(dict.fromkeys([*click_order[:depth], *buy_order[:depth]]))
    position = {i: j for j, i in enumerate(shortlist)}
    tops = tuple([position[i] for i in order[:depth]] for order in (click_order, buy_order))

    length = _bucket(n, _LENGTHS)
    own_len = _OWN_LEN[length]
    # The shopper's pace: the time between the last two events (known when serving).
    last_key = _LAST_PACE[_bucket((events[-1][1] - events[-2][1]) / 1000, _PACE_S)
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
            b = bisect_right(_RANKS, r) + 1
            row = [_OWN_KEYS[b], own_len[b], _COUNT_KEYS[bisect_right(_RANKS, counts[a])]]
            if a == last:
                row.append(last_key)
            if a in carted:
                row.append("carted")
            if a in ordered:
                row.append("ordered")
        lc = last_clicks.get(a)
        ls = last_successor.get(a)
        clicks_pop = score(CLICKS, a)
        row += (_LAST_CLICKS[bisect_right(_RANKS, lc) if lc is not None else -1],
                _LAST_SUCCESSOR[bisect_right(_RANKS, ls) if ls is not None else -1],
                _CLICKS_NB[bisect_right(_RATIOS, clicks_nb.get(a, 0.0))],
                _SUCCESSOR_NB[bisect_right(_RATIOS, successor_nb.get(a, 0.0))],
                _BUYS_NB[bisect_right(_RATIOS, buys_nb.get(a, 0.0))],
                _POP_KEYS[bisect_right(_POP, clicks_pop / 4096)])
        fr = factor_rank.get(a)
        if fr is not None:
            row.append(_FACTOR_KEYS[bisect_right(_RANKS, fr)])
        if clicks_pop:
            row.append(_CONVERSION[bisect_right(_RATIOS, score(CARTS, a) / clicks_pop)])
        keys.append(row)
    return Candidates([aids[i] for i in shortlist], keys, (tops[0], tops[1], tops[1]),
                      ([aids[i] for i in click_order[:fill]], [aids[i] for i in buy_order[:fill]]))


def _add_row(scores: dict[int, float], row: list[tuple[int, int]], weight: float,
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


class ObjectiveRanker:
    """One objective's River model and the snapshot of it that serves."""

    def __init__(self, config: RerankConfig, learning_rate: float) -> None:
        self.config = config
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))
        self.model._weights["prior"] = 1.0  # start from the hand-made ranking (module doc)
        self.serving: dict[str, float] = dict(self.model.weights)
        self.learned = 0
        self.swaps = 0
        self._rng = random.Random(config.seed)

    def scores(self, candidates: Candidates, objective: int) -> list[float]:
        """Model scores of the objective's shortlist, in the order of ``tops[objective]``."""
        get = self.serving.get
        prior = get("prior", 0.0)
        keys = candidates.keys
        return [prior * _PRIOR[rank] + get(_RANK_KEYS[rank], 0.0)
                + sum(get(key, 0.0) for key in keys[i])
                for rank, i in enumerate(candidates.tops[objective])]

    def learn(self, candidates: Candidates, objective: int, positive: int) -> bool:
        """Learn from one event; False when its aid was not shortlisted (nothing to learn)."""
        top = candidates.tops[objective]
        aids = candidates.aids
        try:
            index = next(r for r, i in enumerate(top) if aids[i] == positive)
        except StopIteration:
            return False
        config = self.config
        negatives = self._rng.sample(range(len(top)), min(config.negatives, len(top)))
        learn_one = self.model.learn_one
        learn_one(self._example(candidates, top, index), True)
        for r in negatives:
            if r != index:
                learn_one(self._example(candidates, top, r), False)
        self.learned += 1
        if config.snapshot_every and self.learned % config.snapshot_every == 0:
            self.swap()
        return True

    @staticmethod
    def _example(candidates: Candidates, top: list[int], rank: int) -> dict[str, float]:
        x = dict.fromkeys(candidates.keys[top[rank]], 1.0)
        x[_RANK_KEYS[rank]] = 1.0
        x["prior"] = _PRIOR[rank]
        return x

    def swap(self) -> None:
        """Serve the model as it is now."""
        self.serving = dict(self.model.weights)
        self.swaps += 1


class Reranker:
    """Three objective rankers: lists from candidates, and learning from the next event."""

    def __init__(self, config: RerankConfig | None = None) -> None:
        self.config = config or RerankConfig()
        config = self.config
        buys = config.learning_rate if config.buy_learning_rate is None else \
            config.buy_learning_rate
        self.rankers = tuple(ObjectiveRanker(config, rate)
                             for rate in (config.learning_rate, buys, buys))
        self._sample = self.config.sample_percent
        self._kept: dict[int, tuple[int, Candidates]] = {}
        """Per session: states seen, and one of them drawn uniformly (see :meth:`learn`)."""
        self._rng = random.Random(self.config.seed)

    def sampled(self, session: int, etype: int = CLICKS) -> bool:
        """Whether this event is judged and learned from (the same in every process)."""
        if self._sample >= 100 or etype != CLICKS:
            return True
        return (session * 0x9E3779B97F4A7C15 >> 17) % 100 < self._sample

    def lists(self, candidates: Candidates, k: int = 20,
              only: Collection[int] | None = None) -> Lists:
        """The three lists; with ``only``, just those objectives' (the others empty):
        judging an event needs one."""
        aids = candidates.aids
        lists: list[list[int]] = []
        for objective, ranker in enumerate(self.rankers):
            if only is not None and objective not in only:
                lists.append([])
                continue
            scores = ranker.scores(candidates, objective)
            top = candidates.tops[objective]
            # stable: equal scores keep the prior's order
            order = sorted(range(len(top)), key=scores.__getitem__, reverse=True)
            ranked = [aids[top[r]] for r in order[:k]]
            if len(ranked) < k:
                taken = set(ranked)
                tail = candidates.prior[min(objective, 1)]
                ranked += [a for a in tail[len(top):] if a not in taken][:k - len(ranked)]
            lists.append(ranked)
        return Lists(*lists)

    def draw(self, session: int) -> bool:
        """Whether the reservoir keeps the state this event of ``session`` is judged in: the
        draw :meth:`learn` acts on, made before the candidates are built, so that a click in
        a state that is not kept builds what the clicks model reads only."""
        kept = self._kept.get(session)
        return kept is None or self._rng.random() * (kept[0] + 1) < 1

    def learn(self, session: int, candidates: Candidates, etype: int, aid: int,
              keep: bool | None = None) -> bool:
        """Learn from an event of ``session`` whose state before it gave ``candidates``.

        A click teaches the clicks model from the state just before it: the next click is
        what the clicks list is for. A cart or an order teaches its model from a state drawn
        uniformly from the session's earlier ones (a reservoir of one per session), not the
        one just before: the carts and orders lists are for *everything* bought later, and
        learning only from the moment just before a cart taught the models that the item
        clicked last is the one bought, which cost recall. ``keep``: the :meth:`draw` made
        for this event (None: draw now).
        """
        if keep is None:
            keep = self.draw(session)
        if etype == CLICKS:
            learned = self.rankers[CLICKS].learn(candidates, CLICKS, aid)
            self._keep(session, candidates, keep)
            return learned
        kept = self._kept.get(session)
        learned = kept is not None and self.rankers[etype].learn(kept[1], etype, aid)
        self._keep(session, candidates, keep)
        return learned

    def _keep(self, session: int, candidates: Candidates, keep: bool) -> None:
        kept = self._kept.pop(session, None)
        seen = 1 if kept is None else kept[0] + 1
        if keep:
            kept = (seen, candidates)
        else:
            assert kept is not None  # a session's first state is always kept
            kept = (seen, kept[1])
        self._kept[session] = kept  # most recently active last
        if len(self._kept) > self.config.reservoir_sessions:
            del self._kept[next(iter(self._kept))]

    def stats(self) -> dict[str, int]:
        return {f"rerank_learned_{name}": r.learned for name, r in zip(OBJECTIVES, self.rankers,
                                                                       strict=True)}

    def snapshot_bytes(self) -> bytes:
        """The serving weights of the three models, for a store."""
        return orjson.dumps({name: r.serving for name, r in zip(OBJECTIVES, self.rankers,
                                                                strict=True)})

    def swap(self) -> None:
        """Serve all three models as they are now."""
        for ranker in self.rankers:
            ranker.swap()

    def mix(self, data: bytes) -> None:
        """Learn on from the mean of these models and a snapshot another process learned
        (iterative parameter mixing): workers that each learn from their own partitions
        share what they learned, and the next :meth:`swap` serves the mixture."""
        obj = orjson.loads(data)
        for name, ranker in zip(OBJECTIVES, self.rankers, strict=True):
            theirs = obj.get(name)
            if theirs is None:
                continue
            weights = ranker.model._weights
            mine = dict(ranker.model.weights)
            for key in mine.keys() | theirs.keys():
                weights[key] = (mine.get(key, 0.0) + float(theirs.get(key, 0.0))) / 2

    def load_snapshot(self, data: bytes, *, learning: bool = False) -> None:
        """Serve weights saved by another process; with ``learning``, also learn on from them
        (a worker that restarts continues from the stored models instead of from the prior).

        Without ``learning`` this process's models keep learning on their own: its next
        :meth:`swap` serves them again.
        """
        obj = orjson.loads(data)
        for name, ranker in zip(OBJECTIVES, self.rankers, strict=True):
            if name in obj:
                ranker.serving = {str(k): float(v) for k, v in obj[name].items()}
                ranker.swaps += 1
                if learning:
                    weights = ranker.model._weights
                    weights.clear()
                    for key, value in ranker.serving.items():
                        weights[key] = value
