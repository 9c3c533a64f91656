"""Every list holds 20 distinct items whenever 20 items are known, whatever the event times:
far past, far future, mixed clocks, a clock that jumps; on both runtimes. An item is known
while it had an event in the latest two co-visitation epochs: older ones are forgotten."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distributed.serving import distributed_rerank, lists_from_store, load_states
from distributed.store import RedisStore
from online_models.rerank import RerankConfig
from producers.generator import GeneratorConfig, generate_sessions
from producers.ordering import time_ordered
from stream.events import MAX_TS_MS, Event
from stream.pipeline import PipelineConfig, Recommendations, SessionPipeline

T2022 = 1_659_304_800_000
Y2099 = int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1000)
CONFIGS = {"recipe": PipelineConfig(),
           "rerank": PipelineConfig(rerank=RerankConfig(sample_percent=100))}

clocks = st.one_of(
    st.integers(0, 10**9),                       # 1970: a unit mistake, seconds for ms
    st.integers(T2022, T2022 + 30 * 86_400_000),  # a replay of 2022
    st.integers(Y2099, MAX_TS_MS),               # a client's clock years ahead
)


@st.composite
def hostile_logs(draw: st.DrawFn) -> list[Event]:
    """Sessions of any shape over a catalog of any size, times from any of the clocks, in
    any order (a clock that jumps ahead and back)."""
    items = draw(st.integers(1, 60))
    events = []
    for session in range(draw(st.integers(1, 8))):
        for _ in range(draw(st.integers(1, 30))):
            events.append(Event(session, draw(st.integers(0, items - 1)), draw(clocks),
                                draw(st.sampled_from([0, 0, 0, 1, 2]))))
    return draw(st.permutations(events))


def known_items(events: Sequence[Event], config: PipelineConfig) -> int:
    """Items with an event in the latest two known (co-visitation) epochs of the log."""
    epoch_ms = config.covis.half_life_ms * config.covis.epoch_half_lives
    latest = max(e.ts // epoch_ms for e in events)
    return len({e.aid for e in events if e.ts // epoch_ms >= latest - 1})


def assert_full(lists: Recommendations, known: int) -> None:
    for name in ("clicks", "carts", "orders"):
        served = getattr(lists, name)
        assert len(served) == len(set(served)), f"{name}: an item twice"
        assert len(served) >= min(20, known), f"{name}: {len(served)} items, {known} known"
        assert len(served) <= 20


def embedded_lists(config: PipelineConfig, events: Sequence[Event],
                   sessions: Sequence[int]) -> dict[int, Recommendations]:
    pipeline = SessionPipeline(config)
    pipeline.expire_every = 7  # sweeps run, and often
    for i in range(0, len(events), 13):
        pipeline.apply(events[i:i + 13])
    return {s: pipeline.recommendations(s) for s in sessions}


def stored_lists(store: RedisStore, config: PipelineConfig, events: Sequence[Event],
                 sessions: Sequence[int], lanes: int = 2,
                 batch: int = 13) -> dict[int, Recommendations]:
    """What a worker would store for these events (each lane a partition), then the lists a
    web node serves from the store."""
    worker = SessionPipeline(config, keep_matrices=False)
    worker.sessions.track = True
    for lane in range(lanes):
        part = [e for e in events if e.session % lanes == lane]
        for start in range(0, len(part), batch):
            chunk = part[start:start + batch]
            touched = worker.apply(chunk, lane=lane)
            held = {s: state for s in touched if (state := worker.sessions.get(s)) is not None}
            writes = {s: (state.to_bytes(runs=False), *state.take_runs_log())
                      for s, state in held.items()}
            assert store.apply(worker.covis.take_journal(),
                               {("events", lane): (start, start + len(chunk))}, writes,
                               worker.popularity.take_journal(),
                               {s: state.max_ts for s, state in held.items()})
    reranker = None
    if config.rerank is not None:
        from online_models.rerank import Reranker

        reranker = Reranker(distributed_rerank(config.rerank))
    states = load_states(store, sessions, config.covis.window)
    return lists_from_store(store, states, config.list_size, reranker,
                            lifetime_ms=config.session_lifetime_ms)


@pytest.mark.parametrize("name", list(CONFIGS))
@settings(max_examples=150, deadline=None)
@given(events=hostile_logs())
def test_embedded_lists_are_full_whatever_the_clock(name: str, events: list[Event]) -> None:
    known = known_items(events, CONFIGS[name])
    sessions = sorted({e.session for e in events}) + [10**6]  # and one never seen
    for lists in embedded_lists(CONFIGS[name], events, sessions).values():
        assert_full(lists, known)


@pytest.fixture
def store(redis_url: str, unique_prefix: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_url, unique_prefix)
    yield store
    store.clear()


@pytest.mark.integration
@pytest.mark.parametrize("name", list(CONFIGS))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=hostile_logs())
def test_lists_served_from_the_store_are_full_whatever_the_clock(
        store: RedisStore, name: str, events: list[Event]) -> None:
    store.clear()
    config = dataclasses.replace(CONFIGS[name], rerank=(
        distributed_rerank(CONFIGS[name].rerank) if CONFIGS[name].rerank else None))
    known = known_items(events, config)
    sessions = sorted({e.session for e in events}) + [10**6]
    for lists in stored_lists(store, config, events, sessions).values():
        assert_full(lists, known)


def jumpy(seed: int = 5) -> list[Event]:
    """A user's log (50,928 events, 3,000 sessions) in which one event in 500 comes with a
    stray clock: 1970, 2099, or an hour after the last."""
    config = GeneratorConfig(sessions=3000, items=4000, seed=99)
    events = list(time_ordered(e for _, s in generate_sessions(config) for e in s))
    rng = random.Random(seed)
    stray = (lambda: rng.randrange(10**9), lambda: Y2099 + rng.randrange(10**9),
             lambda: events[-1].ts + 3_600_000)
    return [e._replace(ts=rng.choice(stray)()) if rng.random() < 1 / 500 else e
            for e in events]


def test_a_users_log_with_stray_clocks_keeps_every_list_full_embedded() -> None:
    events = jumpy()
    sessions = sorted({e.session for e in events})
    known = known_items(events, CONFIGS["rerank"])
    assert known >= 20
    pipeline = SessionPipeline(CONFIGS["rerank"])
    pipeline.apply(events)
    assert pipeline.sessions.watermark >= Y2099  # the clock did jump
    for session in sessions:
        assert_full(pipeline.recommendations(session), known)


@pytest.mark.integration
def test_a_users_log_with_stray_clocks_keeps_every_list_full_in_the_store(
        store: RedisStore) -> None:
    events = jumpy()
    sessions = sorted({e.session for e in events})
    config = PipelineConfig(rerank=distributed_rerank(RerankConfig(sample_percent=10)))
    known = known_items(events, config)
    served = stored_lists(store, config, events, sessions, lanes=4, batch=500)
    for session in sessions:
        assert_full(served[session], known)
