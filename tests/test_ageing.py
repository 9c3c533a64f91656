"""Items nobody views age out: the matrices and the fill of last resort keep the last two
epochs, in memory, in batch and in Redis alike, so junk cannot grow the state for ever."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

import pytest

from distributed.serving import lists_from_store, load_states
from distributed.store import RedisStore
from online_models.covisitation import DAY_MS, CovisConfig, CoVisitation
from online_models.covisitation_batch import batch_covisitation
from online_models.popularity import KNOWN
from online_models.rerank import RerankConfig
from online_models.sessions import SessionState
from producers.generator import GeneratorConfig, generate_sessions
from producers.ordering import time_ordered
from stream.events import MAX_ID, Event
from stream.pipeline import PipelineConfig, SessionPipeline

TOPIC = "events"
#: Epochs of 14 days: the generated log's 62 days cross four or five of them.
SHORT = CovisConfig(epoch_half_lives=1)


@pytest.fixture(scope="module")
def long_log() -> list[Event]:
    """50,928 generated events of 3,000 sessions over 62 days, popular items and long
    sessions among them."""
    config = GeneratorConfig(sessions=3000, items=4000, seed=99)
    return list(time_ordered(e for _, s in generate_sessions(config) for e in s))


def matrices(cv: CoVisitation) -> tuple[dict, dict, dict]:
    return cv.matrix("clicks"), cv.matrix("carts_orders"), cv.matrix("buy2buy")


def test_at_scale_the_embedded_matrices_equal_batch_and_hold_no_forgotten_item(
        long_log: list[Event]) -> None:
    epoch_ms = SHORT.half_life_ms * SHORT.epoch_half_lives
    assert long_log[-1].ts // epoch_ms - long_log[0].ts // epoch_ms >= 4
    pipeline = SessionPipeline(PipelineConfig(covis=SHORT, session_ttl_ms=10_000 * DAY_MS))
    pipeline.apply(long_log)
    aged = matrices(pipeline.covis)
    assert aged == batch_covisitation([tuple(e) for e in long_log], SHORT)

    kept_from = (long_log[-1].ts // epoch_ms - 1) * epoch_ms
    recent = {e.aid for e in long_log if e.ts >= kept_from}
    assert aged[0], "the last two epochs hold pairs"
    for matrix in aged:
        for aid, row in matrix.items():
            assert aid in recent and set(row) <= recent
    forever = SessionPipeline(PipelineConfig(covis=dataclasses.replace(SHORT, epoch_half_lives=40),
                                             session_ttl_ms=10_000 * DAY_MS))
    forever.apply(long_log)
    assert pipeline.covis.cell_count() < 0.8 * forever.covis.cell_count()
    known = pipeline.popularity.top(KNOWN, 100_000)
    assert pipeline.popularity.known_epoch_ms == epoch_ms
    assert known and set(known) == recent


def junk(n: int, days: int, seed: int = 1) -> Iterator[Event]:
    """Random items over the whole id space, a new session every 50 events, spread evenly over
    ``days`` days: what a client posting junk leaves."""
    rng = random.Random(seed)
    step = days * DAY_MS // n
    for i in range(n):
        yield Event(10**12 + i // 50, rng.randrange(MAX_ID), 1_659_304_800_000 + i * step,
                    rng.randrange(3))


@pytest.mark.parametrize("epoch_half_lives, bounded", [(1, True), (40, False)])
def test_junk_over_ten_epochs_leaves_a_bounded_state(epoch_half_lives: int,
                                                      bounded: bool) -> None:
    """60,000 junk events over 140 days: with 14-day epochs the cells stop growing after two
    epochs; kept for ever (40 half-lives), they grow with every event."""
    config = PipelineConfig(covis=dataclasses.replace(SHORT, epoch_half_lives=epoch_half_lives),
                            rerank=RerankConfig(sample_percent=0))  # successors kept too
    pipeline = SessionPipeline(config)
    assert pipeline.successors is not None
    cells, items, steps = [], [], []
    events = list(junk(60_000, 140))
    for i in range(0, len(events), 6_000):  # every 14 days
        pipeline.apply(events[i:i + 6_000])
        cells.append(pipeline.covis.cell_count())
        items.append(len(pipeline.popularity.top(KNOWN, 10**6)))
        steps.append(len(pipeline.successors))
    assert cells[1] > 0
    if bounded:
        assert max(cells[2:]) <= 1.1 * cells[1], cells
        assert max(items[2:]) <= 1.1 * items[1], items
        assert max(steps[2:]) <= 1.1 * steps[1], steps
    else:
        assert cells[-1] > 4 * cells[1], cells
        assert items[-1] > 4 * items[1] and steps[-1] > 4 * steps[1]


def test_late_and_early_events_from_forgotten_epochs_change_nothing(
        long_log: list[Event]) -> None:
    """Events of an epoch already forgotten (a clock years behind, a replay of old days)
    leave the matrices as they are; the sessions they belong to go on."""
    config = PipelineConfig(covis=SHORT, session_ttl_ms=10_000 * DAY_MS)
    clean = SessionPipeline(config)
    clean.apply(long_log)
    rng = random.Random(3)
    starts = [rng.randrange(10**9) for _ in range(400)]  # 1970: a clock in seconds
    hostile = [e._replace(ts=starts[i // 5] + i % 5 * 60_000, session=10**12 + i // 5)
               for i, e in enumerate(rng.sample(long_log, 2_000))]
    mixed = SessionPipeline(config)
    mixed.apply(long_log)
    mixed.apply(hostile)
    assert matrices(mixed.covis) == matrices(clean.covis)
    alone = CoVisitation(SHORT)  # the same sessions alone do make pairs
    states: dict[int, SessionState] = {}
    for e in hostile:
        alone.update(states.setdefault(e.session, SessionState.empty(SHORT.window)), e.aid,
                     e.ts, e.type)
    assert alone.cell_count() > 1000
    assert matrices(mixed.covis) == batch_covisitation(
        [tuple(e) for e in [*long_log, *hostile]], SHORT)


@pytest.fixture
def store(redis_url: str, unique_prefix: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_url, unique_prefix, epoch_shift=SHORT.epoch_half_lives)
    yield store
    store.clear()


@pytest.mark.integration
def test_at_scale_redis_forgets_the_same_epochs_and_gives_the_memory_back(
        store: RedisStore, long_log: list[Event]) -> None:
    """Two workers on four partitions, batches of 500, each partition a little behind the
    other (so batches of older epochs arrive after newer ones): Redis's matrices equal the
    batch definition, lists read from it equal the embedded pipeline's, and once the logs of
    forgotten epochs are deleted, no key of an older epoch is left."""
    config = PipelineConfig(covis=SHORT, session_ttl_ms=10_000 * DAY_MS)
    parts: dict[int, list[tuple[int, Event]]] = {p: [] for p in range(4)}
    for event in long_log:
        part = parts[event.session % 4]
        part.append((len(part), event))
    workers = {0: SessionPipeline(config, keep_matrices=False),
               1: SessionPipeline(config, keep_matrices=False)}
    for pipeline in workers.values():
        pipeline.sessions.track = True
    forgotten: list[int] = []
    positions = dict.fromkeys(parts, 0)
    lag = {0: 0, 1: 2_000, 2: 4_000, 3: 6_000}  # partition p starts after p × 2,000 events
    step = 0
    while any(positions[p] < len(parts[p]) for p in parts):
        step += 500
        for p, records in parts.items():
            start = positions[p]
            if step <= lag[p] or start >= len(records):
                continue
            chunk = records[start:start + 500]
            positions[p] += len(chunk)
            pipeline = workers[p % 2]
            touched = pipeline.apply(e for _, e in chunk)
            states = {s: (st.to_bytes(runs=False), *st.take_runs_log()) for s in touched
                      if (st := pipeline.sessions.get(s)) is not None}
            batch = store.encode(pipeline.covis.take_journal(),
                                 {(TOPIC, p): (chunk[0][0], chunk[-1][0] + 1)}, states,
                                 pipeline.popularity.take_journal())
            assert store.apply_encoded(batch)
            forgotten += batch.forgotten
    assert len(forgotten) >= 3
    clicks, carts_orders, buy2buy = batch_covisitation([tuple(e) for e in long_log], SHORT)
    assert store.matrix("clicks") == clicks
    assert store.matrix("carts_orders") == carts_orders
    assert store.matrix("buy2buy") == buy2buy

    embedded = SessionPipeline(config)
    embedded.apply(long_log)
    sessions = sorted({e.session for e in long_log})[-300:]
    served = lists_from_store(store, load_states(store, sessions, SHORT.window))
    assert served == {s: embedded.recommendations(s) for s in sessions}
    assert store.popular(KNOWN, 50) == embedded.popularity.top(KNOWN, 50)

    assert store.forget(forgotten) > 0
    latest = store.clicks_epoch
    assert latest is not None
    for key in store.client.scan_iter(match=f"{store.prefix}cv:*:*:*"):
        assert int(key.decode().rsplit(":", 2)[1]) >= latest - 1, key

