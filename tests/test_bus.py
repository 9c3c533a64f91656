"""The in-memory bus: order, batching, backpressure, draining on close."""

from __future__ import annotations

import asyncio

import pytest

from stream.bus import BusClosed, MemoryBus, open_bus
from stream.events import Event


def events(n: int, start: int = 0) -> list[Event]:
    return [Event(i % 3, i, i, 0) for i in range(start, start + n)]


async def collect(bus: MemoryBus, max_batch: int) -> list[list[Event]]:
    return [batch async for batch in bus.batches(max_batch)]


async def test_batches_keep_publish_order_and_respect_the_size_bound() -> None:
    bus = MemoryBus()
    await bus.publish(events(25))
    await bus.close()
    batches = await collect(bus, 10)
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [e for b in batches for e in b] == events(25)


async def test_close_drains_what_is_queued_then_stops() -> None:
    bus = MemoryBus()
    consumer = asyncio.create_task(collect(bus, 1000))
    await bus.publish(events(3))
    await asyncio.sleep(0)
    await bus.publish(events(2, 3))
    await bus.close()
    batches = await asyncio.wait_for(consumer, 2)
    assert [e for b in batches for e in b] == events(5)


async def test_a_full_bus_makes_the_producer_wait_instead_of_growing() -> None:
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


async def test_publishing_to_a_closed_bus_is_an_error() -> None:
    bus = MemoryBus()
    await bus.close()
    with pytest.raises(BusClosed):
        await bus.publish(events(1))


def test_bus_urls_choose_the_implementation_or_say_why_not() -> None:
    assert isinstance(open_bus("memory://"), MemoryBus)
    with pytest.raises(ValueError, match="unknown scheme"):
        open_bus("carrier-pigeon://coop")
    with pytest.raises(ValueError, match="memory://"):
        open_bus("kafka://127.0.0.1:9092")
