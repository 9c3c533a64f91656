"""What ``liverec evaluate --method`` compares: baselines and the streaming pipeline itself.

Every method is the live :class:`~stream.pipeline.SessionPipeline` with a different way to
turn state into lists, so the figures measure the code that serves, not a re-implementation:

* ``popular``: the most popular items of all time (per objective, then the other types);
* ``recent-popular``: time-decayed popularity with a one-day half-life (the pipeline's fill);
* ``history``: the session's own items, recency- and type-weighted, nothing else;
* ``covis-batch``: the co-visitation recipe over matrices computed in batch from the training
  part (``liverec covis --mode batch``) and never updated after;
* ``covis``: the streaming pipeline serving the recipe;
* ``mf``: River matrix factorisation alone (``online_models.factors``), then popular items;
* ``rerank``: the streaming pipeline with the River re-rankers (the default);
* ``prior``: the re-rankers' candidates ranked by each objective's hand-made prior alone
  (models that never learn): what ``rerank`` serves before it has learned anything;
* ``sr`` and ``vsknn``: sequential rules and vector-based session kNN
  (:mod:`evaluation.baselines`), published baselines fitted on the training part, then
  popular items;
* ``gru4rec``, ``sasrec`` and ``sqn``: the sequence models of :mod:`online_models.sequence`,
  trained on the training part's sessions (JAX, the ``train`` extra), served by numpy, then
  popular items. Not in ``all``: training them takes minutes.

``learn=False`` (no ``--online``) feeds test events to the sessions only; with it, test events
also update every model after they were judged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Final

from evaluation.baselines import SequentialRules, SessionKNN
from online_models.covisitation import DAY_MS
from online_models.covisitation_batch import batch_covisitation
from online_models.factors import FactorsConfig
from online_models.recommend import Lists, _most_common, _weighted_history, recommend
from online_models.rerank import RerankConfig
from online_models.rows import top_items
from online_models.sequence.config import SequenceConfig
from online_models.sessions import SessionState
from stream.events import Event
from stream.pipeline import Judge, PipelineConfig, SessionPipeline

METHODS: Final = ("popular", "recent-popular", "history", "covis-batch", "covis", "mf",
                   "rerank", "prior", "sr", "vsknn", "gru4rec", "sasrec", "sqn")
#: What ``--method all`` runs: every method but the trained sequence models.
ALL: Final = METHODS[:-3]
DEFAULT_METHOD: Final = "rerank"
#: ``popular``'s half-life: long enough that every event of any dataset weighs the same.
ALL_TIME_MS: Final = 3650 * DAY_MS

ListFunction = Callable[[SessionPipeline, SessionState | None], Lists]
#: Fits a method on the whole training part at once; returns how it makes lists.
Fit = Callable[[list[Event], PipelineConfig], ListFunction]


class BatchNeighbours:
    """Matrices computed once, in batch, read like the live ones."""

    def __init__(self, events: list[Event], pipeline_config: PipelineConfig) -> None:
        clicks, carts_orders, buy2buy = batch_covisitation(events, pipeline_config.covis)
        self._rows = {"clicks": clicks, "carts_orders": carts_orders, "buy2buy": buy2buy}
        self._top: dict[tuple[str, int], list[tuple[int, int]]] = {}

    def top(self, matrix: str, aid: int, k: int = 20) -> list[tuple[int, int]]:
        cached = self._top.get((matrix, aid))
        if cached is None or len(cached) < k:
            cached = self._top[(matrix, aid)] = top_items(self._rows[matrix].get(aid, {}), k)
        return cached[:k]


class Method:
    """A method under evaluation: a pipeline, and how it turns a session's state into lists.

    ``lists_of=None`` means the pipeline's own lists (the recipe, or the re-rankers), judged
    inside :meth:`SessionPipeline.apply` so the re-rankers learn from the very lists judged.
    ``fit``: a method fitted on the whole training part at once, which then makes the lists.
    """

    def __init__(self, name: str, config: PipelineConfig,
                 lists_of: ListFunction | None = None, fit: Fit | None = None) -> None:
        self.name = name
        self.pipeline = SessionPipeline(config)
        # Lists made elsewhere read popularity only: counting pairs would be wasted work.
        self.pipeline.count_pairs = lists_of is None and fit is None
        self.lists_of = lists_of
        self._fit = fit
        self._batch_events: list[Event] | None = [] if fit is not None else None

    def train(self, events: Iterable[Event]) -> None:
        """Learn from the training part, in time order."""
        if self._batch_events is not None:
            events = list(events)
            self._batch_events.extend(events)
        batch: list[Event] = []
        for event in events:
            batch.append(event)
            if len(batch) >= 1000:
                self.pipeline.apply(batch)
                batch = []
        self.pipeline.apply(batch)
        if self._fit is not None and self._batch_events is not None:
            self.lists_of = self._fit(self._batch_events, self.pipeline.config)
            self._batch_events = None

    def feed(self, events: Iterable[Event], *, learn: bool, judge: Judge | None = None) -> None:
        """Replay test events; ``judge`` sees each one with the lists live before it."""
        pipeline = self.pipeline
        if self.lists_of is None:
            pipeline.judges = [judge] if judge is not None else []
            try:
                pipeline.apply(events, learn=learn)
            finally:
                pipeline.judges = []
            return
        for event in events:
            if judge is not None:
                state = pipeline.sessions.get(event.session)
                if state is not None and state.recent:
                    judge(event, self.lists_of(pipeline, state))
            pipeline.apply((event,), learn=learn)

    def lists(self, session: int) -> Lists:
        """The session's lists now."""
        pipeline = self.pipeline
        if self.lists_of is None:
            recs = pipeline.recommendations(session)
            return Lists(recs.clicks, recs.carts, recs.orders)
        return self.lists_of(pipeline, pipeline.sessions.get(session))


def _events(state: SessionState | None) -> list[tuple[int, int, int]]:
    return list(state.recent) if state is not None else []


def _popular_lists(pipeline: SessionPipeline, state: SessionState | None) -> Lists:
    return recommend([], pipeline.covis, pipeline.popularity, pipeline.config.list_size)


def _history_lists(pipeline: SessionPipeline, state: SessionState | None) -> Lists:
    own = _most_common(_weighted_history(_events(state)), pipeline.config.list_size)
    return Lists(own, list(own), list(own))


def _factor_lists(pipeline: SessionPipeline, state: SessionState | None) -> Lists:
    assert pipeline.factors is not None
    k = pipeline.config.list_size
    ranked = [aid for aid, _ in pipeline.factors.top([a for a, _, _ in _events(state)], k)]
    fill = recommend([], pipeline.covis, pipeline.popularity, k)
    seen = set(ranked)
    ranked += [a for a in fill.clicks if a not in seen][:k - len(ranked)]
    return Lists(ranked, list(ranked), list(ranked))


def _fit_recipe(events: list[Event], config: PipelineConfig) -> ListFunction:
    neighbours = BatchNeighbours(events, config)

    def lists(pipeline: SessionPipeline, state: SessionState | None) -> Lists:
        return recommend(_events(state), neighbours, pipeline.popularity,
                         pipeline.config.list_size)
    return lists


def _sessions(events: list[Event]) -> dict[int, list[Event]]:
    """Training events by session, each in its own order (events come in time order)."""
    sessions: dict[int, list[Event]] = {}
    for event in events:
        sessions.setdefault(event.session, []).append(event)
    return sessions


def _filled(ranked: list[int], pipeline: SessionPipeline) -> Lists:
    """One list for every objective: ``ranked``, then popular items up to the list size."""
    k = pipeline.config.list_size
    if len(ranked) < k:
        seen = set(ranked)
        fill = recommend([], pipeline.covis, pipeline.popularity, k).clicks
        ranked = ranked + [a for a in fill if a not in seen][:k - len(ranked)]
    return Lists(ranked, list(ranked), list(ranked))


def _fit_rules(events: list[Event], config: PipelineConfig) -> ListFunction:
    rules = SequentialRules()
    rules.fit([e.aid for e in session] for session in _sessions(events).values())

    def lists(pipeline: SessionPipeline, state: SessionState | None) -> Lists:
        recent = _events(state)
        return _filled(rules.top(recent[-1][0], pipeline.config.list_size) if recent else [],
                       pipeline)
    return lists


def _fit_knn(events: list[Event], config: PipelineConfig) -> ListFunction:
    knn = SessionKNN()
    knn.fit(([e.aid for e in session], session[-1].ts)
            for session in _sessions(events).values())

    def lists(pipeline: SessionPipeline, state: SessionState | None) -> Lists:
        history = [aid for aid, _, _ in _events(state)]
        return _filled(knn.top(history, pipeline.config.list_size), pipeline)
    return lists


def _fit_sequence(config: SequenceConfig, progress: Callable[[str], None]) -> Fit:
    def fit(events: list[Event], _: PipelineConfig) -> ListFunction:
        from online_models.sequence.train import train  # JAX: only when asked for

        def epoch(e: int, epochs: int, loss: float) -> None:
            progress(f"  {config.kind}: epoch {e}/{epochs}, loss {loss:.4f}")

        sessions = list(_sessions(events).values())
        model, _report = train(([e.aid for e in s] for s in sessions), config, epoch,
                               types=([e.type for e in s] for s in sessions))

        def lists(pipeline: SessionPipeline, state: SessionState | None) -> Lists:
            history = [aid for aid, _, _ in _events(state)]
            return _filled([a for a, _ in model.top(history, pipeline.config.list_size)],
                           pipeline)
        return lists
    return fit


def make_method(name: str, base: PipelineConfig | None = None,
                rerank: RerankConfig | None = None, sequence: SequenceConfig | None = None,
                progress: Callable[[str], None] = lambda _: None) -> Method:
    """A fresh, untrained method by name (one of :data:`METHODS`)."""
    base = base or PipelineConfig()
    no_rerank = PipelineConfig(covis=base.covis, session_ttl_ms=base.session_ttl_ms,
                               popularity_half_life_ms=base.popularity_half_life_ms,
                               list_size=base.list_size)
    if name == "popular":
        config = PipelineConfig(covis=base.covis, session_ttl_ms=base.session_ttl_ms,
                                popularity_half_life_ms=ALL_TIME_MS, list_size=base.list_size)
        return Method(name, config, _popular_lists)
    if name == "recent-popular":
        return Method(name, no_rerank, _popular_lists)
    if name == "history":
        return Method(name, no_rerank, _history_lists)
    if name == "covis-batch":
        return Method(name, no_rerank, fit=_fit_recipe)
    if name == "sr":
        return Method(name, no_rerank, fit=_fit_rules)
    if name == "vsknn":
        return Method(name, no_rerank, fit=_fit_knn)
    if name == "covis":
        return Method(name, no_rerank)
    if name in ("gru4rec", "sasrec", "sqn"):
        chosen_sequence = dataclasses.replace(sequence or SequenceConfig(), kind=name)
        return Method(name, no_rerank, fit=_fit_sequence(chosen_sequence, progress))
    if name == "mf":
        config = PipelineConfig(covis=base.covis, session_ttl_ms=base.session_ttl_ms,
                                popularity_half_life_ms=base.popularity_half_life_ms,
                                list_size=base.list_size, factors=base.factors or FactorsConfig())
        return Method(name, config, _factor_lists)
    if name in ("rerank", "prior"):
        chosen = rerank or RerankConfig()
        if name == "prior":  # never swaps in what it learns; clicks not even learned
            chosen = dataclasses.replace(chosen, snapshot_every=0, sample_percent=0)
        config = PipelineConfig(covis=base.covis, session_ttl_ms=base.session_ttl_ms,
                                popularity_half_life_ms=base.popularity_half_life_ms,
                                list_size=base.list_size, rerank=chosen,
                                factors=base.factors)
        return Method(name, config)
    raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")


def parse_methods(text: str) -> list[str]:
    """``"covis,rerank"`` → names, checked; ``"all"`` → every method but the sequence models."""
    if text.strip() == "all":
        return list(ALL)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise ValueError(f"unknown method(s) {', '.join(unknown) or '(none)'}; expected a "
                         f"comma-separated list of {', '.join(METHODS)}, or all")
    return list(dict.fromkeys(names))
