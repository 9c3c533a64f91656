"""The worker's batch loop without Kafka: fetches handed to :class:`BatchLoop` by hand, state in
the memory store (and in Redis, with the services up).

Two loops share a store as two workers share Redis, through what a consumer group does to
them: rebalances that move partitions, redeliveries from stale commits, fetches from a
generation that ended, a worker that has not yet heard it lost a partition, and junk on the
topic. Whatever the order, the store must end at the batch definition over the valid events,
each applied once, and the junk in the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from distributed.batch_loop import BatchLoop
from distributed.config import WorkerConfig
from distributed.memory_store import MemoryStore
from distributed.store_api import SharedStore
from distributed.transport import Fetched
from online_models.covisitation import DAY_MS
from online_models.covisitation_batch import batch_covisitation
from online_models.popularity import KNOWN
from producers.generator import GeneratorConfig, generate_sessions
from producers.ordering import time_ordered
from stream.events import Event
from stream.pipeline import PipelineConfig, SessionPipeline
from stream.wire import encode

TOPIC = "events"
PARTITIONS = 4
CONFIG = PipelineConfig(session_ttl_ms=10_000 * DAY_MS)  # sessions outlive the test's clock
JUNK = [b"not json", b'{"session": "x"}', b"{}", b'{"session": 1, "aid": 2}', b"\xff" * 5000,
        b'{"session": 1, "events": [{"aid": -1, "ts": 5, "type": "clicks"}]}']


@dataclass
class HandFeed:
    """The consumer as the loop sees it, driven by the test."""

    generation_id: int = 1
    ends: dict[TP, int] = field(default_factory=dict)
    dead: list[tuple[bytes, str]] = field(default_factory=list)
    committed: dict[TP, int] = field(default_factory=dict)

    def generation(self) -> int:
        return self.generation_id

    def highwater(self, tp: TP) -> int | None:
        return self.ends.get(tp)

    async def dead_letter(self, value: bytes, reason: str) -> None:
        self.dead.append((value, reason))

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        self.committed.update(offsets)


def topic_of(events: list[Event], junk_every: int, seed: int) -> dict[int, list[bytes]]:
    """The events topic's values per partition (keyed by session), with junk among them."""
    rng = random.Random(seed)
    parts: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    for i, event in enumerate(events):
        part = parts[event.session % PARTITIONS]
        if junk_every and i % junk_every == 0:
            part.append(rng.choice(JUNK))
        part.append(encode(event)[1])
    return parts


def fetches(parts: dict[int, list[bytes]], owned: list[int], start: dict[int, int],
            stop: dict[int, int], generation: int, seed: int) -> list[Fetched]:
    """Fetches of ``owned`` partitions from ``start`` to ``stop`` (offsets), of random sizes,
    mixing partitions as a consumer's fetches do."""
    rng = random.Random(seed)
    at = dict(start)
    out: list[Fetched] = []
    while any(at[p] < stop[p] for p in owned):
        records: dict[TP, list[ConsumerRecord[Any, Any]]] = {}
        for p in owned:
            if at[p] >= stop[p] or rng.random() < 0.3:
                continue
            end = min(stop[p], at[p] + rng.choice([1, 3, 40, 250, 900]))
            records[TP(TOPIC, p)] = [
                ConsumerRecord(TOPIC, p, o, 1_700_000_000_000 + o, 0, None, parts[p][o], None,
                               0, len(parts[p][o]), ())
                for o in range(at[p], end)]
            at[p] = end
        if records:
            out.append(Fetched(generation, records))
    return out


async def feed(loop: BatchLoop, batches: list[Fetched]) -> None:
    """Run the loop over these fetches, as the agent does, and store what it applied."""
    async def stream() -> AsyncIterator[Fetched]:
        for fetched in batches:
            loop.fetch_waiting = True
            yield fetched
            await asyncio.sleep(0)  # the flush tasks and the store run in between

    await loop.run(stream())
    await loop.drain()


def new_loop(store: SharedStore, hand: HandFeed, failures: list[BaseException]) -> BatchLoop:
    def fail(exc: BaseException) -> None:  # the worker exits; the test stops
        failures.append(exc)
        raise exc

    return BatchLoop(WorkerConfig(view_max_age_s=0), CONFIG, store, hand, TOPIC, fail=fail)


def scenario(store: SharedStore, events: list[Event], junk_every: int, seed: int
             ) -> tuple[BatchLoop, BatchLoop, HandFeed, HandFeed, dict[int, list[bytes]]]:
    """Two workers through three rebalances; returns them and the topic."""
    parts = topic_of(events, junk_every, seed)
    size = {p: len(values) for p, values in parts.items()}
    a, b = HandFeed(), HandFeed()
    for hand in (a, b):
        hand.ends = {TP(TOPIC, p): n for p, n in size.items()}
    failures: list[BaseException] = []
    first, second = new_loop(store, a, failures), new_loop(store, b, failures)
    zero = dict.fromkeys(range(PARTITIONS), 0)
    part_way = {p: n * 2 // 5 for p, n in size.items()}
    later = {p: n * 7 // 10 for p, n in size.items()}

    async def run() -> None:
        # Generation 1: the first worker holds 0 and 1, the second 2 and 3.
        first.on_assigned([TP(TOPIC, 0), TP(TOPIC, 1)])
        await feed(first, fetches(parts, [0, 1], zero, part_way, 1, seed))
        await feed(second, fetches(parts, [2, 3], zero, part_way, 1, seed + 1))
        for loop in (first, second):
            await loop.on_revoked()
        # Generation 2: partitions move; each starts from its commit, or further back (a
        # commit that lagged the store): what the store has is skipped. A fetch of
        # generation 1 arrives late and is dropped.
        a.generation_id = b.generation_id = 2
        back = {p: max(0, b.committed.get(TP(TOPIC, p), a.committed.get(TP(TOPIC, p), 0)) - 60)
                for p in range(PARTITIONS)}
        await feed(second, fetches(parts, [2], zero, part_way, 1, seed + 2))  # stale
        await feed(first, fetches(parts, [0, 3], back, later, 2, seed + 3))
        await feed(second, fetches(parts, [1, 2], back, later, 2, seed + 4))
        # Generation 3 for the first worker only: it takes partition 3 on, while the second
        # has not heard yet and still feeds partition 3 from where it believes it is (it
        # never had it: it reads the store's offset, then its own position goes stale).
        await first.on_revoked()
        a.generation_id = 3
        await feed(second, fetches(parts, [3], later, {**later, 3: later[3] + 300}, 2,
                                   seed + 5))
        await feed(first, fetches(parts, [3], later, size, 3, seed + 6))
        await feed(second, fetches(parts, [3], {**later, 3: later[3] + 300}, size, 2,
                                   seed + 7))  # refused: the first stored past it
        await second.on_revoked()
        b.generation_id = 3
        await feed(second, fetches(parts, [0, 1, 2], later, size, 3, seed + 8))
        for loop in (first, second):
            await loop.drain()

    asyncio.run(run())
    assert failures == []
    return first, second, a, b, parts


def assert_applied_once(store: SharedStore, events: list[Event], first: BatchLoop,
                        second: BatchLoop, a: HandFeed, b: HandFeed,
                        parts: dict[int, list[bytes]]) -> None:
    log = [tuple(e) for e in events]
    clicks, carts_orders, buy2buy = batch_covisitation(log, CONFIG.covis)
    assert store.matrix("clicks") == clicks
    assert store.matrix("carts_orders") == carts_orders
    assert store.matrix("buy2buy") == buy2buy
    assert store.events() == len(events)
    for p, values in parts.items():
        assert store.stored_offset(TOPIC, p) == len(values)
    embedded = SessionPipeline(CONFIG)
    embedded.apply(events)
    for kind in (*range(4), KNOWN):
        assert store.popular(kind, 40) == embedded.popularity.top(kind, 40)
    junk = sum(1 for values in parts.values() for v in values if v in JUNK)
    assert first.stats.rejected + second.stats.rejected == junk == len(a.dead) + len(b.dead)
    assert all(value in JUNK and reason for value, reason in a.dead + b.dead)


def test_two_loops_through_rebalances_apply_each_event_once(store: SharedStore) -> None:
    """A small stream, every path: junk, skips, a stale generation, a refused batch."""
    events = list(time_ordered(e for _, s in generate_sessions(
        GeneratorConfig(sessions=300, items=200, seed=11, days=3)) for e in s))
    first, second, a, b, parts = scenario(store, events, junk_every=97, seed=1)
    assert first.stats.skipped + second.stats.skipped > 0  # redeliveries were dropped
    assert second.generation > 1  # refused (another worker stored it) and forgot its state
    assert_applied_once(store, events, first, second, a, b, parts)


@pytest.mark.slow
def test_two_loops_apply_a_realistic_stream_once(store: SharedStore) -> None:
    """At the size a shop brings: 60,000+ events over five days, sessions up to hundreds of
    events long, lognormal item popularity, junk every 1,000 records."""
    events = list(time_ordered(e for _, s in generate_sessions(
        GeneratorConfig(sessions=3_600, items=5_000, seed=12, days=5)) for e in s))
    assert len(events) >= 50_000
    assert max(e.ts for e in events) - min(e.ts for e in events) > 4 * DAY_MS
    first, second, a, b, parts = scenario(store, events, junk_every=1000, seed=2)
    assert second.generation > 1
    assert_applied_once(store, events, first, second, a, b, parts)


def test_a_failing_store_stops_the_loop_with_nothing_committed() -> None:
    """A store that raises (Redis gone for good, past its patience): the loop hands the error
    to ``fail`` (the worker exits) and commits nothing Kafka would then skip."""
    class Broken(MemoryStore):
        def apply_encoded(self, batch: Any) -> bool:
            raise RuntimeError("disk full")

    store, hand, failures = Broken(), HandFeed(), []
    loop = BatchLoop(WorkerConfig(), CONFIG, store, hand, TOPIC, fail=failures.append)
    parts = topic_of([Event(1, 2, 1_000, 0), Event(1, 3, 2_000, 0)], 0, 0)

    async def run() -> None:
        async def stream() -> AsyncIterator[Fetched]:
            for fetched in fetches(parts, [1], {1: 0}, {1: 2}, 1, 0):
                yield fetched

        await loop.run(stream())
        for _ in range(5):  # the flush task sends the batch; its store task fails
            await asyncio.sleep(0)
        await loop.commit_stored()

    asyncio.run(run())
    assert [str(f) for f in failures] == ["disk full"]
    # Committed: where the store is (offset 0), nothing past it.
    assert hand.committed in ({}, {TP(TOPIC, 1): 0}) and store.stored_offset(TOPIC, 1) is None
