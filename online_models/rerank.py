"""One River re-ranker per objective, learned test-then-train.

The co-visitation recipe (:mod:`online_models.recommend`) ranks by fixed rules. Here the same
signals and a few more become features of each candidate (:mod:`online_models.candidates`:
candidates, each objective's hand-made prior, sparse indicator features), and one logistic
regression per objective (clicks, carts, orders) learns, from what shoppers do next, how much
each is worth:

1. **Learning**, test then train: a click labels the candidates built just before it; a cart
   or an order labels a state drawn from the session's earlier ones (:meth:`Reranker.learn`
   says why). The aid is the positive, a uniform sample of the shortlist the negatives.
2. **Serving** reads a *snapshot* of each model's weights, taken every ``snapshot_every``
   learned events and swapped in whole while it beats the prior on the events it is judged
   on (:class:`ObjectiveRanker`): serving never sees a half-updated model, and a
   snapshot is a plain dict that a store can save and another process load
   (:meth:`Reranker.snapshot_bytes`). The distributed runtime takes snapshots on a clock
   instead, saves them to Redis and every worker and web node swaps in the newest
   (``docs/production.md``).

The model starts from the prior (its weight is 1, the others 0), so an untrained re-ranker
serves the hand-made ranking and learning only moves it where the data says so.
"""

from __future__ import annotations

import itertools
import math
import random
from bisect import bisect_right
from collections.abc import Collection
from typing import Final

import orjson

from online_models.candidates import RANKS, Candidates
from online_models.recommend import Lists
from online_models.rerank_config import RerankConfig
from online_models.sequence.source import SequenceSource
from online_models.types import CLICKS, TYPE_NAMES

__all__ = ["OBJECTIVES", "ObjectiveRanker", "RerankConfig", "Reranker"]

OBJECTIVES: Final = TYPE_NAMES
#: Per prior rank: the ``prior`` feature and the rank's indicator (precomputed: hot path).
_PRIOR: Final = [-math.log1p(r) for r in range(1024)]
_RANK_KEYS: Final = [f"rank={bisect_right(RANKS, r)}" for r in range(1024)]
#: The weights of a model that serves its prior alone (never changed: compared by identity).
PRIOR_ONLY: Final[dict[str, float]] = {"prior": 1.0}
_ZEROS: Final = itertools.repeat(0.0)
#: The list length a learned event is judged at (as the page and the metrics judge).
LIST_SIZE: Final = 20
#: NDCG gain per 0-based rank: 1/log2(rank + 2) within the list, 0 below it.
_GAIN: Final = [1.0 / math.log2(r + 2) if r < LIST_SIZE else 0.0 for r in range(1024)]


class ObjectiveRanker:
    """One objective's River model, its latest snapshot, and what serves: the snapshot when
    it has been doing better than the prior, else the prior alone.

    Every learned event is first judged (test, then train) twice on the same shortlist: where
    does its aid rank under the prior, and under the snapshot? ``edge`` sums, decayed over
    about ``judge_window`` events, the snapshot's NDCG@:data:`LIST_SIZE` gain minus the
    prior's (``1/log2(rank + 2)`` within the list, else 0: a hit counts, and so does its
    place); the snapshot serves while it is positive. So a model serves as soon as it does
    better, from its first learned events, and never goes on serving worse than its prior.
    ``prior_hits`` and ``model_hits`` count the hits of each, for the metrics.
    """

    def __init__(self, config: RerankConfig, learning_rate: float) -> None:
        # Imported here: River takes 0.4 s to import, which every command paid, re-rankers
        # or not (``liverec covis`` never builds one).
        from river import linear_model, optim

        self.config = config
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))
        self.model._weights["prior"] = 1.0  # start from the hand-made ranking (module doc)
        self.snapshot: dict[str, float] = PRIOR_ONLY
        """The model as of the last :meth:`swap`, judged until it is replaced."""
        self.serving: dict[str, float] = self.snapshot
        self.learned = 0
        self.swaps = 0
        self.judged = 0
        """Learned events judged (their aid was shortlisted), and of them the hits of the
        prior's and of the snapshot's top :data:`LIST_SIZE`."""
        self.prior_hits = 0
        self.model_hits = 0
        self.edge = 0.0
        self._decay = 1.0 - 1.0 / config.judge_window
        self._rng = random.Random(config.seed)

    @property
    def serves_model(self) -> bool:
        return self.serving != PRIOR_ONLY  # loaded weights equal to it are not a model

    def scores(self, candidates: Candidates, objective: int,
               weights: dict[str, float] | None = None) -> list[float]:
        """Model scores of the objective's shortlist, in the order of ``tops[objective]``
        (the serving weights unless ``weights`` are given)."""
        get = (self.serving if weights is None else weights).get
        prior = get("prior", 0.0)
        keys = candidates.keys
        return [prior * _PRIOR[rank] + get(_RANK_KEYS[rank], 0.0)
                + sum(map(get, keys[i], _ZEROS))  # get(key, 0.0) without a frame per key
                for rank, i in enumerate(candidates.tops[objective])]

    def _judge(self, candidates: Candidates, objective: int, index: int) -> None:
        """Judge the snapshot against the prior on the event whose aid is ``index`` in the
        objective's shortlist, then serve whichever has the edge."""
        self.judged += 1
        rank = index
        if self.snapshot is not PRIOR_ONLY:
            scores = self.scores(candidates, objective, self.snapshot)
            mine = scores[index]
            # Its rank in the stable sort lists() makes: ties keep the prior's order.
            rank = sum(1 for r, v in enumerate(scores) if v > mine or (v == mine and r < index))
        self.prior_hits += index < LIST_SIZE
        self.model_hits += rank < LIST_SIZE
        self.edge = self.edge * self._decay + _GAIN[rank] - _GAIN[index]
        if self.serving is self.snapshot or self.serving is PRIOR_ONLY:
            # Not weights loaded from a store: those serve until this process swaps again,
            # so that every node serves the same saved model (docs/production.md).
            self.serving = self.snapshot if self.edge > 0 else PRIOR_ONLY

    def learn(self, candidates: Candidates, objective: int, positive: int) -> bool:
        """Learn from one event; False when its aid was not shortlisted (nothing to learn)."""
        top = candidates.tops[objective]
        aids = candidates.aids
        try:
            index = next(r for r, i in enumerate(top) if aids[i] == positive)
        except StopIteration:
            return False
        self._judge(candidates, objective, index)
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
        """Snapshot the model as it is now; it serves while it has the edge on the prior."""
        self.snapshot = dict(self.model.weights)
        self.serving = self.snapshot if self.edge > 0 else PRIOR_ONLY
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
        self.sequence = (SequenceSource(config.sequence_model)
                         if config.sequence_model is not None else None)
        """The sequence model the candidates read, kept with the models that read it: every
        process with re-rankers has one, swapped like their snapshots."""
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
                tail = candidates.prior[objective]
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
        out: dict[str, int] = {}
        for name, r in zip(OBJECTIVES, self.rankers, strict=True):
            out[f"rerank_learned_{name}"] = r.learned
            out[f"rerank_judged_{name}"] = r.judged
            out[f"rerank_prior_hits_{name}"] = r.prior_hits
            out[f"rerank_model_hits_{name}"] = r.model_hits
            out[f"rerank_serving_model_{name}"] = int(r.serves_model)
        if self.sequence is not None:
            out["sequence_model_items"] = len(self.sequence.model.vocabulary)
            out["sequence_model_swaps"] = self.sequence.swaps
            out["sequence_model_failed_loads"] = self.sequence.failed_loads
        return out

    def snapshot_bytes(self) -> bytes:
        """Per objective, the model as learned and the weights that serve (the prior's while
        the model has no edge on it), for a store: other workers mix the learned weights in,
        a restarted worker learns on from them, and every node serves what serves here."""
        return orjson.dumps({"format": 2, **{
            name: {"model": dict(r.model.weights), "serving": r.serving}
            for name, r in zip(OBJECTIVES, self.rankers, strict=True)}})

    @staticmethod
    def _parts(data: bytes) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
        """Per objective in a snapshot: (learned, serving) weights. A snapshot saved before
        the gate held one set of weights per objective: both."""
        obj = orjson.loads(data)
        nested = obj.pop("format", 1) >= 2
        out = {}
        for name in OBJECTIVES:
            part = obj.get(name)
            if part is None:
                continue
            model, serving = (part["model"], part["serving"]) if nested else (part, part)
            out[name] = ({str(k): float(v) for k, v in model.items()},
                         {str(k): float(v) for k, v in serving.items()})
        return out

    def swap(self) -> None:
        """Serve all three models as they are now."""
        for ranker in self.rankers:
            ranker.swap()

    def mix(self, data: bytes) -> None:
        """Learn on from the mean of these models and a snapshot another process learned
        (iterative parameter mixing): workers that each learn from their own partitions
        share what they learned, and the next :meth:`swap` serves the mixture. The learned
        weights are mixed, never the prior that serves in their place."""
        parts = self._parts(data)
        for name, ranker in zip(OBJECTIVES, self.rankers, strict=True):
            if name not in parts:
                continue
            theirs = parts[name][0]
            weights = ranker.model._weights
            mine = dict(ranker.model.weights)
            for key in mine.keys() | theirs.keys():
                weights[key] = (mine.get(key, 0.0) + theirs.get(key, 0.0)) / 2

    def load_snapshot(self, data: bytes, *, learning: bool = False) -> None:
        """Serve weights saved by another process; with ``learning``, also learn on from the
        model it learned (a worker that restarts continues from the stored models instead of
        from the prior) and judge that model against the prior from now on.

        Without ``learning`` this process's models keep learning on their own: its next
        :meth:`swap` serves them again.
        """
        parts = self._parts(data)
        for name, ranker in zip(OBJECTIVES, self.rankers, strict=True):
            if name not in parts:
                continue
            model, serving = parts[name]
            ranker.serving = serving  # not the sentinel: it serves until this node's swap
            ranker.swaps += 1
            if learning:
                weights = ranker.model._weights
                weights.clear()
                weights.update(model)
                ranker.snapshot = dict(model)
