"""The shared store's contract, held against both stores (memory, and Redis with the
services up; the ``store`` fixture of ``conftest.py``): state summed from several workers'
journals equals one process's (matrices equal the batch definition, lists read from the store
equal the embedded pipeline's), a batch counts once, and the views the loop reads through
(features, row caches, models) work the same on both. Read by read: ``test_store_reads.py``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from distributed.memory_store import MemoryStore
from distributed.serving import (
    FeatureCache,
    RowCache,
    SharedModels,
    StoreView,
    distributed_rerank,
    lists_from_store,
    load_states,
    store_features,
)
from distributed.store import RedisStore
from distributed.store_api import OffsetConflict, SharedStore, StoreBatch
from online_models.candidates import build_candidates, candidate_rows
from online_models.covisitation import DAY_MS, CovisConfig
from online_models.covisitation_batch import batch_covisitation
from online_models.popularity import KNOWN
from online_models.rerank import PRIOR_ONLY, RerankConfig, Reranker
from online_models.rows import CO_BITS, CellJournal, journal_add, top_items
from online_models.sessions import SessionState
from producers.generator import GeneratorConfig, generate_sessions
from producers.ordering import time_ordered
from producers.readers import read_events
from stream.events import Event
from stream.pipeline import PipelineConfig, SessionPipeline

TOPIC = "events"


def partitioned(events: list[Event], partitions: int) -> dict[int, list[tuple[int, Event]]]:
    """Kafka-like partitions keyed by session: (offset, event) in time order."""
    out: dict[int, list[tuple[int, Event]]] = {p: [] for p in range(partitions)}
    for event in events:
        part = out[event.session % partitions]
        part.append((len(part), event))
    return out


@pytest.mark.parametrize("source", ["otto-sample", "generated", "one-day-epochs"])
def test_two_workers_on_four_partitions_sum_to_one_process(
    store: SharedStore, shared_data: Path, source: str
) -> None:
    """Matrices equal the batch definition; popularity and lists equal the embedded path's.

    ``one-day-epochs``: the OTTO sample with an epoch every day (one bit each), so the
    workers cross some 28 epochs at different moments (each partition runs whole before the
    next: the store's clock goes to the end and later batches come from forgotten epochs),
    Redis folds per-epoch sums and forgets all but the last two."""
    covis = CovisConfig(max_neighbors=200)
    if source == "one-day-epochs":
        covis = CovisConfig(max_neighbors=200, half_life_ms=DAY_MS, epoch_half_lives=1)
        store.epoch_shift = 1
    if source == "generated":
        config_ = GeneratorConfig(sessions=400, items=300, seed=3)
        flat = (e for _, session in generate_sessions(config_) for e in session)
        events = list(time_ordered(flat))
    else:
        events = list(time_ordered(read_events(shared_data / "otto-sample" / "train.jsonl")))
    parts = partitioned(events, 4)
    # Row logs compact at 512 bytes, and only after worker 0's batches: compacted and plain
    # logs, and logs compacted by a worker that did not append all of them, sum the same.
    store.compact_min_bytes = 512
    compactions = 0
    # The served configuration (row bound included), but sessions kept for the whole log: in
    # Redis they expire in wall-clock time, in memory in event time.
    config = PipelineConfig(covis=covis, session_ttl_ms=10_000 * DAY_MS)
    workers = {0: SessionPipeline(config), 1: SessionPipeline(config)}
    for pipeline in workers.values():
        pipeline.sessions.track = True
        pipeline.covis.take_journal()
        pipeline.popularity.take_journal()
    for partition, records in parts.items():  # worker = partition % 2, batches of 50
        pipeline = workers[partition % 2]
        for i in range(0, len(records), 50):
            chunk = records[i:i + 50]
            if i % 350 == 0:  # as after a rebalance: sessions come back from Redis
                pipeline.sessions.clear()
            missing = {e.session for _, e in chunk if e.session not in pipeline.sessions}
            for session, (blob, runs) in store.session_states(missing).items():
                pipeline.sessions.put(session, SessionState.from_bytes(
                    blob, config.covis.window, runs))
            touched = pipeline.apply(e for _, e in chunk)
            offsets = {(TOPIC, partition): (chunk[0][0], chunk[-1][0] + 1)}
            states = {s: (st.to_bytes(runs=False), *st.take_runs_log()) for s in touched
                      if (st := pipeline.sessions.get(s)) is not None}
            batch = store.encode(pipeline.covis.take_journal(), offsets, states,
                                 pipeline.popularity.take_journal())
            assert store.apply_encoded(batch)
            if partition % 2 == 0:
                compactions += store.compact(batch.compact)
    if source != "one-day-epochs" and isinstance(store, RedisStore):
        assert compactions > 10  # there rows live two days: none grows long enough
    log = [tuple(e) for e in events]
    clicks, carts_orders, buy2buy = batch_covisitation(log, config.covis)
    assert store.matrix("clicks") == clicks
    assert store.matrix("carts_orders") == carts_orders
    assert store.matrix("buy2buy") == buy2buy
    assert store.stored_offset(TOPIC, 3) == len(parts[3])

    embedded = SessionPipeline(config)
    embedded.apply(events)
    assert embedded.covis.pruned_rows == 0  # else embedded rows are a bound, not the sums
    for kind in (*range(4), KNOWN):
        assert store.popular(kind, 40) == embedded.popularity.top(kind, 40)
    alive = sorted({e.session for e in events})
    assert all(s in embedded.sessions for s in alive)
    states = load_states(store, alive, config.covis.window)
    served = lists_from_store(store, states)
    recipe = {s: embedded.recommendations(s) for s in alive}
    assert served == recipe

    # The re-rankers read the same features from Redis as from memory: the same model gives
    # the same lists (the distributed configuration: no successors, which are not stored).
    learned = SessionPipeline(dataclasses.replace(
        config, rerank=distributed_rerank(RerankConfig(sample_percent=100))))
    learned.apply(events)
    assert learned.reranker is not None
    learned.reranker.swap()  # serve what was learned, not the prior
    aids = sorted({e.aid for e in events})
    for kind, scores in store.popularity_scores((0, 1, 2), aids).items():
        assert scores == [learned.popularity.score(kind, a) for a in aids]
    reranked = lists_from_store(store, states, reranker=learned.reranker)
    assert reranked == {s: learned.recommendations(s) for s in alive}
    assert sum(reranked[s] != recipe[s] for s in alive) > len(alive) // 10


def test_a_batch_applied_twice_counts_once(store: SharedStore) -> None:
    pipeline = SessionPipeline()
    pipeline.covis.take_journal()
    pipeline.apply([Event(1, 10, 1_000, 0), Event(1, 20, 2_000, 1)])
    journal = pipeline.covis.take_journal()
    assert store.apply(journal, {(TOPIC, 0): (0, 2)})
    assert not store.apply(journal, {(TOPIC, 0): (0, 2)})  # redelivered after a crash
    assert store.row("carts_orders", 10) == {20: 6}
    assert store.stored_offset(TOPIC, 0) == 2


def test_ids_and_increments_beyond_a_double_s_precision_arrive_exactly(
        store: SharedStore) -> None:
    """Lua numbers are doubles: an aid or a cell increment past 2^53 must reach the row log as
    written."""
    journal = CellJournal(epoch=3)
    big, edge, aid = (1 << 60) + 1, (1 << 53) - 1, (1 << 62) + 7
    journal_add(journal.pairs, 10, 20, (big << CO_BITS) | ((1 << 31) + 3))
    journal_add(journal.buys, 10, 30, big)
    journal_add(journal.buys, 10, aid, edge)
    journal_add(journal.buys, aid, edge, 5)
    assert store.apply(journal, {(TOPIC, 0): (0, 1)})
    assert store.row("clicks", 10) == {20: big}
    assert store.row("carts_orders", 10) == {20: (1 << 31) + 3}
    assert store.row("buy2buy", 10) == {30: big, aid: edge}
    assert store.row("buy2buy", aid) == {edge: 5}


def test_a_batch_past_a_gap_is_refused(store: SharedStore) -> None:
    pipeline = SessionPipeline()
    pipeline.covis.take_journal()
    pipeline.apply([Event(1, 10, 1_000, 0), Event(1, 20, 2_000, 0)])
    assert store.apply(pipeline.covis.take_journal(), {(TOPIC, 0): (0, 2)})
    with pytest.raises(OffsetConflict):
        store.apply(pipeline.covis.take_journal(), {(TOPIC, 0): (5, 9)})


def same_kind(store: SharedStore, prefix: str) -> SharedStore:
    """A second, empty store of the same kind as ``store``."""
    if isinstance(store, RedisStore):
        return RedisStore(store.client, prefix)
    return MemoryStore(prefix)


@pytest.mark.parametrize("way", ["apply_async", "send_apply"])
def test_the_asyncio_path_applies_exactly_once_like_the_blocking_one(
    store: SharedStore, way: str
) -> None:
    """What the worker uses: a batch encoded on the loop, applied without blocking it. Same
    contract as :meth:`SharedStore.apply`: once, refused when redelivered, an error past a
    gap."""
    blocking = same_kind(store, store.prefix + "b-")
    pipeline = SessionPipeline()
    pipeline.covis.take_journal()
    pipeline.apply([Event(1, 10, 1_000, 0), Event(1, 20, 2_000, 1), Event(1, 30, 3_000, 2)])
    journal = pipeline.covis.take_journal()
    batch = store.encode(journal, {(TOPIC, 0): (0, 3)}, events=3)

    async def apply(encoded: StoreBatch) -> bool:
        if way == "apply_async":
            return await store.apply_async(encoded)
        outcome = await store.send_apply(encoded)
        # Sent means sent: the store applies it while the loop is blocked elsewhere.
        deadline = time.monotonic() + 5
        while store.stored_offset(TOPIC, 0) != 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # noqa: ASYNC251 - blocks the loop on purpose
        assert store.stored_offset(TOPIC, 0) == 3, "the script waited for the loop"
        return await outcome()

    async def run() -> list[bool]:
        try:
            first = await apply(batch)
            assert store.stored_offset(TOPIC, 0) == 3
            again = await apply(batch)
            with pytest.raises(OffsetConflict):
                await apply(store.encode(journal, {(TOPIC, 0): (7, 9)}))
            return [first, again]
        finally:
            if isinstance(store, RedisStore) and store._async is not None:
                await store._async.aclose()

    try:
        assert asyncio.run(run()) == [True, False]
        assert blocking.apply(journal, {(TOPIC, 0): (0, 3)}, events=3)
        for matrix in ("clicks", "carts_orders", "buy2buy"):
            for aid in (10, 20, 30):
                assert store.row(matrix, aid) == blocking.row(matrix, aid)
        assert store.row("carts_orders", 10)
        assert store.stored_offset(TOPIC, 0) == 3
        assert store.events() == 3
    finally:
        blocking.clear()


def test_models_saved_to_the_store_are_mixed_and_hot_swapped(store: SharedStore) -> None:
    """A worker saves its snapshot; another process swaps in what it serves; a second worker
    mixes the learned weights (never the prior serving in their place) into its own; a
    restarted worker learns on from the stored model."""
    first, second = Reranker(RerankConfig(snapshot_every=0)), Reranker(RerankConfig(
        snapshot_every=0))
    first.rankers[0].model._weights["rank=1"] = 2.0
    first.rankers[0].edge = 1.0  # judged better than the prior: its snapshot serves
    second.rankers[0].model._weights["rank=1"] = 4.0  # no edge: serves the prior
    a = SharedModels(store, first, interval_s=0, check_s=0)
    b = SharedModels(store, second, interval_s=0, check_s=0)
    web = SharedModels(store, Reranker(), check_s=0)
    for models in (a, b, web):
        models.start()
    assert store.model("rerank") is None and web.version == 0

    assert a.save_due() and a.version == 1 == store.model_version("rerank")
    assert first.rankers[0].serving["rank=1"] == 2.0  # swapped in before saving
    assert web.refresh() and web.reranker.rankers[0].serving["rank=1"] == 2.0
    assert web.reranker.stats()["rerank_serving_model_clicks"] == 1
    assert not web.refresh()  # nothing newer

    assert b.save_due() and b.version == 2
    assert dict(second.rankers[0].model.weights)["rank=1"] == 3.0  # mean of 4.0 and 2.0
    assert second.rankers[0].serving is PRIOR_ONLY  # its own snapshot has no edge yet
    assert web.refresh() and web.reranker.rankers[0].serving == PRIOR_ONLY
    assert web.reranker.stats()["rerank_serving_model_clicks"] == 0
    assert a.refresh() and first.rankers[0].serving == PRIOR_ONLY
    assert dict(first.rankers[0].model.weights)["rank=1"] == 2.0  # serving only: learns on

    assert a.save_due() and a.version == 3  # mixes b's learned 3.0, not b's prior
    assert dict(first.rankers[0].model.weights)["rank=1"] == 2.5

    restarted = SharedModels(store, Reranker(RerankConfig(snapshot_every=0)))
    restarted.start()
    assert restarted.version == 3
    assert dict(restarted.reranker.rankers[0].model.weights)["rank=1"] == 2.5
    assert restarted.reranker.rankers[0].snapshot["rank=1"] == 2.5  # judged from now on


def test_a_model_saved_before_the_gate_still_loads(store: SharedStore) -> None:
    """A store written by an earlier version holds one set of weights per objective."""
    store.save_model("rerank", orjson.dumps({"carts": {"prior": 1.0, "k3": 0.5}}))
    restarted = SharedModels(store, Reranker(RerankConfig(snapshot_every=0)))
    restarted.start()
    carts = restarted.reranker.rankers[1]
    assert carts.serving == {"prior": 1.0, "k3": 0.5} == dict(carts.model.weights)


@contextlib.contextmanager
def counting(store: SharedStore) -> Iterator[list[str]]:
    """The names of the store's reading methods called inside the block."""
    calls: list[str] = []
    names = ("row", "rows", "popular", "popularity_scores", "rows_with_offset")
    originals = {name: getattr(store, name) for name in names}

    def recorder(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return originals[name](*args, **kwargs)
        return call

    for name in names:
        setattr(store, name, recorder(name))
    try:
        yield calls
    finally:
        for name in names:
            delattr(store, name)


def test_the_prefetch_holds_everything_the_three_priors_read(store: SharedStore) -> None:
    """Building a session's candidates from the store's prefetched features makes no further
    round trip: the orders prior reads every candidate's click and order counts (conversion),
    and a read per item would stall a worker's batch and fail it when Redis blinks."""
    events = list(time_ordered(e for _, session in generate_sessions(
        GeneratorConfig(sessions=600, items=500, seed=5)) for e in session))
    pipeline = SessionPipeline(PipelineConfig(session_ttl_ms=10_000 * DAY_MS))
    pipeline.covis.take_journal()
    pipeline.popularity.take_journal()
    pipeline.apply(events)
    assert store.apply(pipeline.covis.take_journal(), {(TOPIC, 0): (0, len(events))}, {},
                       pipeline.popularity.take_journal())
    config = RerankConfig()
    buyers = [s for s in pipeline.sessions.recent_sessions(600)
              if (st := pipeline.sessions.get(s)) is not None and len(st.recent) > 3][:100]
    assert len(buyers) >= 50
    for session in buyers:
        state = pipeline.sessions.get(session)
        assert state is not None
        recent = list(state.recent)
        features = store_features(store, candidate_rows(recent, config),
                                  {a for a, _, _ in recent}, config)
        with counting(store) as calls:
            candidates = build_candidates(recent, features.covis, features.popularity, None,
                                          config)
        assert candidates.tops[1] and candidates.tops[2]  # carts and orders built too
        assert calls == [] and cast(StoreView, features.covis).misses == 0, (session, calls)


def test_a_feature_cache_reuses_reads_while_fresh(store: SharedStore) -> None:
    pipeline = SessionPipeline()
    pipeline.covis.take_journal()
    pipeline.popularity.take_journal()
    pipeline.apply([Event(1, 10, 1_000, 0), Event(1, 20, 2_000, 1)])
    assert store.apply(pipeline.covis.take_journal(), {(TOPIC, 0): (0, 2)}, {},
                       pipeline.popularity.take_journal())
    cache = FeatureCache(max_age_s=60)
    first = StoreView(store, cache)
    first.prefetch_rows([("carts_orders", 10)], [10], neighbours=20)
    assert first.top("carts_orders", 10) == [(20, 6)]
    carts_20 = first.score(1, 20)
    assert carts_20 == pipeline.popularity.score(1, 20) > 0 and first.misses == 0

    pipeline.apply([Event(2, 10, 3_000, 1), Event(2, 20, 4_000, 1)])
    assert store.apply(pipeline.covis.take_journal(), {(TOPIC, 0): (2, 4)}, {},
                       pipeline.popularity.take_journal())
    cached = StoreView(store, cache)  # within max_age: the earlier reads
    cached.prefetch_rows([("carts_orders", 10)], [10], neighbours=20)
    assert cached.top("carts_orders", 10) == [(20, 6)] and cached.score(1, 20) == carts_20
    cache.max_age_s = 0
    fresh = StoreView(store, cache)
    fresh.prefetch_rows([("carts_orders", 10)], [10], neighbours=20)
    assert fresh.top("carts_orders", 10) == [(20, 12)]  # the second cart weighs 6 too
    assert fresh.score(1, 20) == pipeline.popularity.score(1, 20) > carts_20


@pytest.mark.parametrize("epoch_half_lives", [40, 1])  # one epoch; one a day
def test_a_row_cache_kept_with_the_batches_equals_what_redis_holds(
    store: SharedStore, shared_data: Path, epoch_half_lives: int
) -> None:
    """One worker: rows read once and then kept current with its own journals are the rows
    Redis holds, clicks epochs crossed included (one-day epochs: some 28 of them)."""
    covis = CovisConfig(max_neighbors=0, half_life_ms=DAY_MS, epoch_half_lives=epoch_half_lives)
    store.epoch_shift = epoch_half_lives
    pipeline = SessionPipeline(PipelineConfig(covis=covis, session_ttl_ms=10_000 * DAY_MS))
    pipeline.covis.take_journal()
    events = list(time_ordered(read_events(shared_data / "otto-sample" / "train.jsonl")))
    cache = RowCache(max_age_s=3600)
    for i in range(0, len(events), 200):
        pipeline.apply(events[i:i + 200])
        journal = pipeline.covis.take_journal()
        assert store.apply(journal, {(TOPIC, 0): (i, min(i + 200, len(events)))})
        cache.add(journal)
        view = StoreView(store, rows=cache)  # read (or reuse) the rows of this batch's items
        rows = [(m, e.aid) for e in events[i:i + 200:7]
                for m in ("clicks", "carts_orders", "buy2buy")]
        view.prefetch_rows(rows, [], 20)
        for matrix, aid in rows:  # ranked once, then kept up with the journals
            view.top(matrix, aid, 20)
    assert cache.hits > 0 and cache.reads > 0
    now, epoch = time.monotonic(), store.clicks_epoch
    held = {key: row for key in list(cache)
            if (row := cache.get(key, now, epoch)) is not None}
    # One-day epochs: a new epoch drops every row held, so only the last day's are left.
    enough = 100 if epoch_half_lives > 1 else 20
    assert len(held) > enough
    assert held == store.rows(held)
    ranked = [key for key in held if cache._rows[key[0]].peek(key[1]).tops]  # type: ignore[union-attr]
    assert len(ranked) > enough  # top lists kept since their row was read, not ranked now
    kept = {key: cache.top(key, row, 20) for key, row in held.items()}
    assert kept == {key: top_items(row, 20) for key, row in store.rows(held).items()}


def test_a_row_cache_read_while_a_batch_is_in_flight_counts_it_once(
    store: SharedStore, shared_data: Path
) -> None:
    """A worker reads rows for its lists while its next batch's script is on its way:
    Redis may run the script before the read or after it. Either way, once the batch's
    journal is added, the rows held are the rows Redis holds: none counts the batch twice
    (a read after the script) or misses it (a read before)."""
    pipeline = SessionPipeline(PipelineConfig(session_ttl_ms=10_000 * DAY_MS))
    pipeline.covis.take_journal()
    events = list(time_ordered(read_events(shared_data / "otto-sample" / "train.jsonl")))
    cache = RowCache(max_age_s=3600)
    size = 200
    for i in range(0, len(events), size):
        pipeline.apply(events[i:i + size])
        journal = pipeline.covis.take_journal()
        end = min(i + size, len(events))
        number = cache.sent(TOPIC, 0, end)
        script_first = number % 2 == 0
        if script_first:
            assert store.apply(journal, {(TOPIC, 0): (i, end)})
        view = StoreView(store, rows=cache)  # rows the batch in flight adds to
        rows = [(m, e.aid) for e in events[i:end:5]
                for m in ("clicks", "carts_orders", "buy2buy")]
        view.prefetch_rows(rows, [], 20)
        if not script_first:
            assert store.apply(journal, {(TOPIC, 0): (i, end)})
        cache.add(journal, batch=number)
        assert cache.unsettled is None
    now, epoch = time.monotonic(), store.clicks_epoch
    held = {key: row for key in list(cache)
            if (row := cache.get(key, now, epoch)) is not None}
    assert len(held) > 100
    assert held == store.rows(held)
