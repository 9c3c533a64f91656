"""The session pipeline: the one class every runtime feeds with batches of events.

It is plain Python over ``online_models`` (no Kafka, Faust or Redis import): the embedded
runner and the Kafka workers both call :meth:`SessionPipeline.apply` with a batch and read
lists with :meth:`SessionPipeline.recommendations`, which is why both give the same results on
the same input.

Applying an event updates state only (history, co-visitation, popularity). Lists are computed
when someone asks: a subscribed client (the runner refreshes the lists of touched, watched
sessions after every batch) or a request. A shop computes lists for shoppers who are on the
site, not for every event of every session ever seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from online_models.candidates import PopularityScores, SimilarRows, SuccessorRows, build_candidates
from online_models.covisitation import DAY_MS, CovisConfig, CoVisitation
from online_models.explain import Reason, explain, reasons_from_json, reasons_to_json
from online_models.factors import FactorsConfig, SessionFactors
from online_models.metrics import PrequentialRecall
from online_models.popularity import Popularity
from online_models.recommend import Lists, Neighbours, recommend
from online_models.rerank import RerankConfig, Reranker
from online_models.sessions import SessionState, SessionStore
from online_models.similar_sessions import SimilarSessions
from online_models.successors import Successors
from stream.events import CLICKS, Event

#: Called with each judged event and the lists that were live just before it.
Judge = Callable[[Event, Lists], None]

#: Sweep expired sessions every this many events.
EXPIRE_EVERY = 10_000


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that changes what the pipeline computes."""

    covis: CovisConfig = field(default_factory=CovisConfig)
    session_ttl_ms: int = 14 * DAY_MS
    popularity_half_life_ms: int = DAY_MS
    list_size: int = 20
    rerank: RerankConfig | None = None
    """River re-rankers per objective (``online_models.rerank``); None serves the recipe."""
    factors: FactorsConfig | None = None
    """River matrix factorisation (``online_models.factors``), a candidate source of the
    re-rankers and a method of its own in evaluation; None: not learned."""

    @property
    def session_lifetime_ms(self) -> int:
        """How long a session is kept idle (event time): its TTL, and at least as long as any
        pair may span."""
        return max(self.session_ttl_ms, self.covis.buy_max_gap_ms)


@dataclass(frozen=True, slots=True)
class Recommendations:
    """What a client sees for one session: three lists, the state version, the last event time.

    ``version`` is the number of the session's events the lists reflect; it only grows.
    """

    session: int
    clicks: list[int]
    carts: list[int]
    orders: list[int]
    version: int
    event_ts: int | None
    why: dict[str, list[Reason]] | None = field(default=None, compare=False)
    """Per list, why each item is in it (:mod:`online_models.explain`)."""
    method: str | None = None
    """The method that made the lists, when a session may choose (:mod:`stream.switch`)."""

    def to_json(self) -> dict[str, Any]:
        obj = {"session": self.session, "clicks": self.clicks, "carts": self.carts,
               "orders": self.orders, "version": self.version, "event_ts": self.event_ts}
        if self.why is not None:
            obj["why"] = reasons_to_json(self.why)
        if self.method is not None:
            obj["method"] = self.method
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Recommendations:
        return cls(session=int(obj["session"]), clicks=list(obj["clicks"]),
                   carts=list(obj["carts"]), orders=list(obj["orders"]),
                   version=int(obj["version"]), event_ts=obj.get("event_ts"),
                   why=reasons_from_json(obj.get("why")),
                   method=str(obj["method"]) if obj.get("method") is not None else None)

    def same_lists(self, other: Recommendations | None) -> bool:
        """Same lists from the same method (a switch is news even when the lists agree)."""
        return (other is not None and self.clicks == other.clicks
                and self.carts == other.carts and self.orders == other.orders
                and self.method == other.method)


def session_lists(session: int, state: SessionState | None, covis: Neighbours,
                  popularity: PopularityScores, k: int, reranker: Reranker | None = None,
                  successors: SuccessorRows | None = None,
                  factors: SessionFactors | None = None,
                  expired_before: int | None = None,
                  similar: SimilarRows | None = None) -> Recommendations:
    """A session's lists from its state and the shared models, wherever those live: the
    recipe, or with a ``reranker`` its models over the session's candidates.

    A session idle since before ``expired_before`` (the stream's latest time less the
    session lifetime) is served as a new one, whether or not a sweep has dropped it yet: a
    runtime's sweeps run when they run, and a shared store expires states in wall-clock time.
    """
    if state is not None and expired_before is not None and state.max_ts < expired_before:
        state = None
    events = list(state.recent) if state is not None else []
    config = None
    if similar is not None:
        similar = _Remembered(similar)  # the candidates and their reasons read the same
    if reranker is not None and events:
        config = reranker.config
        candidates = build_candidates(events, covis, popularity, successors, config, k,
                                      factors, similar=similar, session=session,
                                      sequence=reranker.sequence)
        lists = reranker.lists(candidates, k)
    else:
        lists = recommend(events, covis, popularity, k)
    named = {"clicks": lists.clicks, "carts": lists.carts, "orders": lists.orders}
    return Recommendations(
        session=session, clicks=lists.clicks, carts=lists.carts, orders=lists.orders,
        version=state.events if state is not None else 0,
        event_ts=state.max_ts if state is not None else None,
        why=explain(named, events, covis, popularity, k, config, successors, factors, similar,
                    session, reranker.sequence if reranker is not None else None),
    )


class _Remembered:
    """Similar sessions' items, looked up once for the same question."""

    def __init__(self, rows: SimilarRows) -> None:
        self._rows = rows
        self._last: tuple[tuple[tuple[int, ...], int | None, int], list[tuple[int, float]]] \
            | None = None

    def top(self, events: Sequence[int], session: int | None = None,
            k: int = 20) -> list[tuple[int, float]]:
        key = (tuple(events), session, k)
        if self._last is None or self._last[0] != key:
            self._last = (key, self._rows.top(events, session, k))
        return self._last[1]


@dataclass(frozen=True, slots=True)
class Features:
    """Where the re-rankers read matrices and popularity when they learn: by default the
    pipeline's own; a distributed worker passes the shared store's (``distributed.serving``)."""

    covis: Neighbours
    popularity: PopularityScores


class SessionPipeline:
    """History, co-visitation and popularity, updated per event; lists on demand."""

    def __init__(self, config: PipelineConfig | None = None, *,
                 keep_matrices: bool = True) -> None:
        """``keep_matrices=False``: co-visitation increments and popularity counts are
        journaled only, for a store that holds the matrices and counts (see
        :attr:`CoVisitation.keep_matrices`)."""
        self.config = config or PipelineConfig()
        covis = self.config.covis
        self.covis = CoVisitation(covis, keep_matrices=keep_matrices)
        self.sessions = SessionStore(covis.window, covis.max_gap_ms,
                                     self.config.session_lifetime_ms)
        self.popularity = Popularity(self.config.popularity_half_life_ms,
                                     keep_counts=keep_matrices,
                                     known_epoch_ms=covis.half_life_ms * covis.epoch_half_lives)
        rerank = self.config.rerank
        self.reranker = Reranker(rerank) if rerank is not None else None
        self.successors = (Successors(covis.max_neighbors,
                                      covis.half_life_ms * covis.epoch_half_lives)
                           if rerank is not None and rerank.successor_items else None)
        self.similar = (SimilarSessions(rerank.similar_sessions, rerank.similar_per_item,
                                        covis.window, rerank.similar_max_sessions,
                                        rerank.history)
                        if rerank is not None and rerank.similar_sessions else None)
        factors = self.config.factors
        self.factors = SessionFactors(factors) if factors is not None else None
        self.prequential = PrequentialRecall(self.config.list_size)
        """Each judged event against the lists live just before it (test, then train)."""
        self.judges: list[Judge] = []
        """Extra observers of judged events (an evaluation); with one, every event is judged."""
        self.count_pairs = True
        """False: events extend the sessions' histories and popularity but no matrix counts
        (an evaluated method that never reads the live matrices)."""
        self.count_popularity = True
        """False: no popularity counts (``liverec covis``, which writes the matrices only:
        counting took a seventh of its time)."""
        self.events_applied = 0
        self.sessions_expired = 0
        self.expire_every = EXPIRE_EVERY
        """Events between two sweeps of idle sessions (which never change a result)."""
        self._until_expire = EXPIRE_EVERY

    def apply(self, events: Iterable[Event], *, learn: bool = True,
              features: Features | None = None, lane: int = 0) -> set[int]:
        """Apply a batch in order; return the sessions it touched.

        With a re-ranker (or a judge), an event of a session with history is first judged
        against the lists live before it and the re-rankers learn from it; then the state
        takes it in. ``learn=False`` updates the sessions' histories only: the models stay as
        they are and nothing is judged but for ``judges`` (an evaluation that learns from its
        training part only, and scores lists it takes itself). ``features``: where
        candidates read matrices and popularity (default: this pipeline's). ``lane``: the
        ordered stream the events come from (a worker's Kafka partition), whose own time
        expires its sessions (:class:`~online_models.sessions.SessionStore`).
        """
        if self.reranker is not None or self.factors is not None or self.judges or not learn:
            return self._apply_judged(events, learn,
                                      features or Features(self.covis, self.popularity), lane)
        touched: set[int] = set()
        touch = self.sessions.touch
        update_covis = self.covis.update if self.count_pairs else self.covis.observe
        update_popularity = self.popularity.update if self.count_popularity else None
        count = 0
        for session, aid, ts, etype in events:
            state = touch(session, ts, lane)
            update_covis(state, aid, ts, etype)
            if update_popularity is not None:
                update_popularity(aid, ts, etype)
            state.events += 1
            touched.add(session)
            count += 1
        self._count(count)
        return touched

    def _apply_judged(self, events: Iterable[Event], learn: bool,
                      features: Features, lane: int) -> set[int]:
        touched: set[int] = set()
        reranker, successors, judges = self.reranker, self.successors, self.judges
        factors = self.factors
        k = self.config.list_size
        count = 0
        for event in events:
            session, aid, ts, etype = event
            state = self.sessions.touch(session, ts, lane)
            recent = state.recent
            if recent and (judges or (learn and reranker is not None
                                      and reranker.sampled(session, etype))):
                if reranker is not None:
                    keep = learn and reranker.draw(session)
                    candidates = build_candidates(list(recent), features.covis,
                                                  features.popularity, successors,
                                                  reranker.config, k, factors,
                                                  buying=bool(judges) or etype != CLICKS
                                                  or keep, similar=self.similar,
                                                  session=session,
                                                  sequence=reranker.sequence)
                    lists = reranker.lists(candidates, k, None if judges else (etype,))
                    if learn:
                        reranker.learn(session, candidates, etype, aid, keep)
                else:
                    lists = recommend(list(recent), features.covis, features.popularity, k)
                self.prequential.add(etype, (lists.clicks, lists.carts, lists.orders), aid)
                for judge in judges:
                    judge(event, lists)
            if learn:
                if successors is not None and recent:
                    successors.add(recent[-1][0], aid, ts)
                if factors is not None:
                    factors.learn(session, aid)
                if self.similar is not None:
                    self.similar.add(session, aid)
                if self.count_pairs:
                    self.covis.update(state, aid, ts, etype)
                else:
                    self.covis.observe(state, aid, ts, etype)
                self.popularity.update(aid, ts, etype)
            else:
                self.covis.observe(state, aid, ts, etype)
            state.events += 1
            touched.add(session)
            count += 1
        self._count(count)
        return touched

    def _count(self, count: int) -> None:
        self.events_applied += count
        self._until_expire -= count
        if self._until_expire <= 0:
            self._until_expire = self.expire_every
            self.sessions_expired += self.sessions.expire()

    def live_state(self, session: int) -> SessionState | None:
        """The session's state, or None when never seen or idle past its lifetime (whether or
        not a sweep has dropped it yet): what every list of it is made from."""
        state = self.sessions.get(session)
        expired_before = self.sessions.watermark - self.sessions.ttl_ms
        return state if state is not None and state.max_ts >= expired_before else None

    def recommendations(self, session: int) -> Recommendations:
        """The session's three lists now; a session never seen (or expired) gets popular
        items."""
        return session_lists(session, self.sessions.get(session), self.covis, self.popularity,
                             self.config.list_size, self.reranker, self.successors,
                             self.factors, self.sessions.watermark - self.sessions.ttl_ms,
                             self.similar)

    def covisitation_rows(self, k: int = 20) -> Iterator[dict[str, object]]:
        """The matrices in ``liverec covis`` format."""
        return self.covis.export(k)

    def stats(self) -> dict[str, int]:
        return {
            "events": self.events_applied,
            "sessions": len(self.sessions),
            "sessions_expired": self.sessions_expired,
            "items": self.popularity.items(),
            "covis_cells": self.covis.cell_count(),
            "covis_pruned_rows": self.covis.pruned_rows,
            **self.prequential.stats(),
            **(self.reranker.stats() if self.reranker is not None else {}),
        }
