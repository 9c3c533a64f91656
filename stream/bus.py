"""The event bus: where producers put events and the pipeline takes them, chosen by URL.

``memory://`` is an in-process queue for the embedded runtime (``liverec demo``): one process,
no servers. ``kafka://host:port`` is the production bus (topic ``events``, key = session):
:class:`distributed.kafka_bus.KafkaBus`. :func:`liverec.runtime.open_bus` picks one by URL.

A bus hands the pipeline *batches*: whatever is queued, up to ``max_batch`` events, without
waiting for a batch to fill. Under load batches grow (throughput); when idle every event goes
through alone (latency).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from stream.events import Event


class Bus(Protocol):
    """What the runtimes need from a bus."""

    async def publish(self, events: Sequence[Event]) -> None:
        """Append events; returns once the bus has taken them (may wait when full)."""

    def batches(self, max_batch: int = 1000) -> AsyncIterator[list[Event]]:
        """Yield batches in publish order until the bus is closed and drained."""

    async def close(self) -> None:
        """No more events: consumers finish what is queued, then stop."""


class BusClosed(RuntimeError):
    """Publishing to a closed bus."""


class MemoryBus:
    """An in-process bus: a bounded asyncio queue of events.

    Bounded so that a producer faster than the pipeline waits instead of growing memory
    without limit (backpressure, like a full Kafka producer buffer).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=capacity)
        self._closed = False

    async def publish(self, events: Sequence[Event]) -> None:
        if self._closed:
            raise BusClosed("the bus is closed")
        put = self._queue.put_nowait
        for event in events:
            try:
                put(event)
            except asyncio.QueueFull:
                await self._queue.put(event)

    async def batches(self, max_batch: int = 1000) -> AsyncIterator[list[Event]]:
        queue = self._queue
        while True:
            first = await queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < max_batch and not queue.empty():
                item = queue.get_nowait()
                if item is None:
                    yield batch
                    return
                batch.append(item)
            yield batch

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._queue.put(None)

    def pending(self) -> int:
        return self._queue.qsize()
