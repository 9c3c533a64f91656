"""The bus contract, run against every implementation: in-memory and real Kafka."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from liverec.runtime import open_bus
from stream.bus import Bus, BusClosed, MemoryBus
from stream.events import Event

BACKENDS = ["memory", pytest.param("kafka", marks=pytest.mark.integration)]


def events(n: int, start: int = 0, sessions: int = 7) -> list[Event]:
    return [Event(i % sessions, i, 1_000_000 + i, i % 3) for i in range(start, start + n)]


@pytest.fixture(params=BACKENDS)
async def bus(request: pytest.FixtureRequest) -> Bus:
    if request.param == "memory":
        yield MemoryBus()
        return
    kafka_url = request.getfixturevalue("kafka_url")
    prefix = request.getfixturevalue("unique_prefix")
    kafka = open_bus(kafka_url, topic_prefix=prefix, group_id=prefix)
    await kafka.ensure_topics()  # type: ignore[attr-defined]
    yield kafka
    await kafka.close()


async def collect(bus: Bus, max_batch: int, limit_s: float = 60.0) -> list[list[Event]]:
    async def run() -> list[list[Event]]:
        return [batch async for batch in bus.batches(max_batch)]

    return await asyncio.wait_for(run(), limit_s)


def by_session(items: list[Event]) -> dict[int, list[Event]]:
    grouped: dict[int, list[Event]] = defaultdict(list)
    for event in items:
        grouped[event.session].append(event)
    return dict(grouped)


async def test_every_event_arrives_once_in_session_order(bus: Bus) -> None:
    sent = events(300)
    await bus.publish(sent[:120])
    await bus.publish(sent[120:])
    await bus.close()
    batches = await collect(bus, 50)
    received = [e for b in batches for e in b]
    assert sorted(received) == sorted(sent)
    assert by_session(received) == by_session(sent)
    assert all(0 < len(b) <= 50 for b in batches)


async def test_close_lets_a_running_consumer_drain_then_stop(bus: Bus) -> None:
    consumer = asyncio.create_task(collect(bus, 1000))
    await bus.publish(events(3))
    await asyncio.sleep(0.2)
    await bus.publish(events(2, 3))
    await bus.close()
    batches = await consumer
    assert sorted(e for b in batches for e in b) == sorted(events(5))


async def test_publishing_to_a_closed_bus_is_an_error(bus: Bus) -> None:
    await bus.close()
    with pytest.raises(BusClosed):
        await bus.publish(events(1))


async def test_a_full_memory_bus_makes_the_producer_wait_instead_of_growing() -> None:
    bus = MemoryBus(capacity=10)
    producer = asyncio.create_task(bus.publish(events(25)))
    await asyncio.sleep(0.05)
    assert not producer.done() and bus.pending() == 10
    consumed: list[Event] = []
    async for batch in bus.batches(4):
        consumed.extend(batch)
        if len(consumed) == 25:
            break
    await producer
    assert consumed == events(25)


@pytest.mark.integration
async def test_bad_messages_go_to_the_dead_letter_topic_and_good_ones_through(
    kafka_url: str, unique_prefix: str
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from distributed.kafka_bus import KafkaBus

    bus = KafkaBus(kafka_url, topic=f"{unique_prefix}events", group_id=unique_prefix)
    await bus.ensure_topics()
    raw = AIOKafkaProducer(bootstrap_servers=bus.bootstrap)
    await raw.start()
    bad = [b"not json", b'{"session": 1, "aid": 2}', b'{"session": 1, "aid": 2, "ts": 5, '
           b'"type": "views"}', b'{"session": 1, "aid": 2, "ts": -1, "type": "clicks"}',
           b'{"session": 1, "aid": "x", "ts": 5, "type": "clicks"}', b"[" + b"1," * 5000 + b"1]"]
    for value in bad:
        await raw.send_and_wait(bus.topic, value, key=b"1")
    await raw.stop()
    await bus.publish(events(10))
    await bus.close()
    received = [e for b in await collect(bus, 100) for e in b]
    assert sorted(received) == sorted(events(10))
    assert bus.rejected == len(bad)

    dlq = AIOKafkaConsumer(bus.dlq_topic, bootstrap_servers=bus.bootstrap,
                           auto_offset_reset="earliest", group_id=f"{unique_prefix}dlq")
    await dlq.start()
    reasons: list[str] = []
    try:
        while len(reasons) < len(bad):
            records = await asyncio.wait_for(dlq.getmany(timeout_ms=500), 30)
            reasons += [dict(m.headers)["reason"].decode() for ms in records.values() for m in ms]
    finally:
        await dlq.stop()
    assert any("not JSON" in r for r in reasons) and any("ts" in r for r in reasons)
    assert any("type" in r for r in reasons) and any("bytes" in r for r in reasons)


def test_bus_urls_choose_the_implementation() -> None:
    from distributed.kafka_bus import KafkaBus

    assert isinstance(open_bus("memory://"), MemoryBus)
    assert isinstance(open_bus("kafka://127.0.0.1:9092", topic_prefix="x-"), KafkaBus)
    assert open_bus("kafka://127.0.0.1:9092", topic_prefix="x-").topic == "x-events"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown scheme"):
        open_bus("carrier-pigeon://coop")
