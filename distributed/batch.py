"""A worker's batch as data, and what is done to it outside the loop's control flow: the
pipeline that journals it, what Redis must store of it, the features its judging reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from distributed.serving import FeatureCache, store_features
from distributed.store_api import SharedStore, StoreBatch
from distributed.transport import Fetched
from online_models.candidates import candidate_rows
from online_models.rerank import Reranker
from online_models.rows import CellJournal
from online_models.sessions import SessionState
from stream.events import Event
from stream.pipeline import Features, PipelineConfig, SessionPipeline


@dataclass
class Prepared:
    """A batch on its way to Redis: staged (what to apply), then applied (what to store)."""

    generation: int
    """How many times the worker had dropped its state when the batch was staged: one staged
    before a drop was applied to state that may be stale, and is staged again."""
    fetched: Fetched
    """The records of the batch as fetched (again, when Redis refuses it)."""
    events: list[Event] = field(default_factory=list)
    lanes: list[tuple[int, int]] = field(default_factory=list)
    """The events' partitions in order: (partition, index past its last event). Each
    partition is its own lane of the pipeline, expiring sessions by its own time."""
    arrived: dict[int, int] = field(default_factory=dict)
    """Per session, when its first event in the batch reached Kafka (the record's timestamp,
    wall-clock ms)."""
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    features: Features | None = None
    journal: list[CellJournal] = field(default_factory=list)
    states: dict[int, SessionState] = field(default_factory=dict)
    encoded: StoreBatch | None = None
    """The batch as the store takes it (:meth:`~distributed.store_api.SharedStore.encode`)."""
    number: int = 0
    """The row cache's number for the batch, given when its script is sent."""


def journaling_pipeline(config: PipelineConfig) -> SessionPipeline:
    """The pipeline a worker runs: the matrices live in Redis, so it only journals their
    increments, and its sessions record which runs changed (their runs go to Redis as a log,
    not whole) and its popularity its counts."""
    pipeline = SessionPipeline(config, keep_matrices=False)
    pipeline.sessions.track = True
    return pipeline


def take_for_store(pipeline: SessionPipeline, touched: set[int], shared: SharedStore,
                   offsets: dict[tuple[str, int], tuple[int, int]], events: int
                   ) -> tuple[list[CellJournal], dict[int, SessionState], StoreBatch]:
    """What the store must keep of a batch the pipeline just applied, taken from it: the
    journals, the touched sessions' states, and the batch encoded for the store."""
    journal = pipeline.covis.take_journal()
    counts = pipeline.popularity.take_journal()
    states = {s: state for s in touched if (state := pipeline.sessions.get(s)) is not None}
    # A session's window is rewritten, its runs only appended to (what changed).
    writes = {s: (st.to_bytes(runs=False), *st.take_runs_log()) for s, st in states.items()}
    encoded = shared.encode(journal, offsets, writes, counts,
                            {s: st.max_ts for s, st in states.items()}, events)
    return journal, states, encoded


def batch_features(events: list[Event], pipeline: SessionPipeline, reranker: Reranker,
                   shared: SharedStore, cache: FeatureCache) -> Features:
    """The shared store's matrices and popularity, prefetched for the candidates the
    re-rankers will judge in this batch: per session with a judged event, the rows of its
    last ``history`` distinct items at any point of the batch."""
    judged = {e.session for e in events if reranker.sampled(e.session, e.type)}
    histories: dict[int, list[tuple[int, int, int]]] = {}
    for session in judged:
        state = pipeline.sessions.get(session)
        histories[session] = list(state.recent) if state is not None else []
    added = dict.fromkeys(judged, 0)
    for e in events:
        if e.session in judged:
            histories[e.session].append((e.aid, e.ts, e.type))
            added[e.session] += 1
    base = reranker.config
    rows = [row for session, events_ in histories.items()
            for row in candidate_rows(events_, dataclasses.replace(
                base, history=base.history + added[session]))]
    own = {aid for events_ in histories.values() for aid, _, _ in events_}
    return store_features(shared, rows, own, base, pipeline.config.list_size, cache)
