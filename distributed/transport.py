"""A Faust transport whose consumer hands a topic's fetches to an agent whole.

Faust 0.15 delivers every message on its own: the fetcher makes a ``Message``, the conductor
an ``Event`` per subscribed channel, the stream sets it as the current event, runs its
processors and sensors and acknowledges it. On this project's 2-core machine that machinery
took about 40 % of a worker's main thread, more than the pipeline itself
(``docs/benchmarks.md``), and the worker uses none of it: it decodes values itself, keeps its
offsets in Redis (exactly once) and settles whole batches.

So the consumer here hands each fetch of a *bulk* topic (:meth:`DirectTransport.
deliver_in_bulk`) to a callback as one :class:`Fetched`: the raw records per partition, as
aiokafka returned them. Everything else is Faust's: fetching in its consumer thread,
subscriptions, rebalances and the seek to the committed offsets after one, flow control.
Every topic the consumer takes is a bulk topic (a worker has no tables and no leader topic);
bulk records bypass Faust's acknowledgements, so their owner commits offsets itself
(:meth:`DirectConsumer.commit_bulk`).

The override is one consumer subclass (:class:`DirectConsumer`: :meth:`~DirectConsumer.
_drain_messages` and a commit of bulk offsets), with the two hooks Faust's factories need to
reach it: the transport names its consumer class (:class:`DirectTransport`), and the
consumer names its thread (:class:`DirectConsumerThread`, for the one aiokafka setting
Faust hard-codes). ``docs/production.md`` says why Faust's public ``take``/``getmany`` do
not do.

Batching follows the load: a callback that blocks (a full queue) holds back the next fetch,
which then takes everything that piled up, so a slow agent gets large batches and an idle one
small and prompt ones. While records come in fast enough that ``linger_s`` would gather at
least ``linger_after`` of them (judged from the last fetch: its records over the time since
the one before), the consumer also waits ``linger_s`` between fetches, so that batches grow
with the rate and each batch's fixed costs are shared. On a quieter stream it fetches at
once, since waiting would only delay the next event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import faust
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


@dataclass(frozen=True, slots=True)
class Fetched:
    """One fetch of a bulk topic: its records per partition, in offset order."""

    generation: int
    """The consumer group generation the records were fetched in. After a rebalance Faust
    seeks every partition back to its committed offset, so an older fetch is delivered again
    and its owner drops this copy."""
    records: dict[TP, list[ConsumerRecord[Any, Any]]]


BulkSink = Callable[[Fetched], Awaitable[None]]


class DirectConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, delivering its topics' fetches whole (every topic it
    consumes is a bulk topic; :meth:`DirectTransport.deliver_in_bulk`)."""

    def _new_consumer_thread(self) -> Any:
        return DirectConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        transport = cast(DirectTransport, self.transport)
        sinks, linger_s = transport.bulk_sinks, transport.linger_s
        linger_after = transport.linger_after
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        last_fetch = last_return = time.monotonic()
        busy = False
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                if sinks and linger_s > 0 and busy:
                    wait = last_fetch + linger_s - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                last_fetch = time.monotonic()
                records, active = await self._wait_next_records(1.0)
                transport.last_poll = time.monotonic()  # the liveness probe's progress
                await asyncio.sleep(0)  # a fetch may return at once, again and again
                if self.should_stop:
                    break
                # Records per linger window at the rate this fetch's records came in.
                now = time.monotonic()
                count = sum(len(batch) for batch in (records or {}).values())
                expected = count * linger_s / max(now - last_return, 1e-4)
                busy, last_return = expected >= linger_after, now
                if not records:
                    continue
                if not self.flow_active:  # a rebalance began during the fetch
                    await self.perform_seek()
                    continue
                await self._deliver(records, active, sinks)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise

    async def _deliver(self, records: Mapping[Any, list[ConsumerRecord[Any, Any]]],
                       active: set[TP] | None, sinks: Mapping[str, BulkSink]) -> None:
        generation = self.app.consumer_generation_id
        read_offset: dict[TP, int | None] = self._read_offset  # type: ignore[assignment]
        bulk: dict[str, dict[TP, list[ConsumerRecord[Any, Any]]]] = {}
        for raw_tp, part in records.items():
            tp = TP(raw_tp.topic, raw_tp.partition)
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            if tp.topic not in sinks:
                # Faust's own per-message delivery is bypassed whole; a worker subscribes to
                # its bulk topic only (no tables, no leader topic).
                raise RuntimeError(f"{tp.topic}: subscribed, but not delivered in bulk")
            last = read_offset.get(tp)
            if last is not None and part and part[0].offset < last:
                part = [r for r in part if r.offset >= last]  # delivered before a seek back
            if part:
                bulk.setdefault(tp.topic, {})[tp] = part
                read_offset[tp] = part[-1].offset + 1
        # Faust's stall check (``verify_event_path``) reads when each partition's stream last
        # took a record, which its per-message path records; without it, a busy worker logged
        # "Stream has not started processing" every few minutes.
        inbound, now = self.app.monitor.stream_inbound_time, time.monotonic()
        for topic, parts in bulk.items():
            inbound.update(dict.fromkeys(parts, now))
            await sinks[topic](Fetched(generation, parts))

    async def commit_bulk(self, offsets: Mapping[TP, int]) -> bool:
        """Commit the next offsets to read of bulk-delivered partitions (their records bypass
        Faust's acknowledgements). Partitions no longer assigned are left out by Faust."""
        due = {tp: offset for tp, offset in offsets.items() if self._should_commit(tp, offset)}
        return bool(due) and await self._commit_offsets(due)


class DirectConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, its aiokafka consumer with the transport's
    ``fetch_max_wait_ms`` (Faust hard-codes 1,500)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads it when the consumer starts and builds its fetcher.
        consumer._fetch_max_wait_ms = cast(DirectTransport, transport).fetch_max_wait_ms
        return consumer


class DirectTransport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`DirectConsumer`."""

    Consumer: ClassVar[Any] = DirectConsumer

    def __init__(self, *args: Any, linger_s: float = 0.0, linger_after: int = 0,
                 fetch_max_wait_ms: int = 100, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bulk_sinks: dict[str, BulkSink] = {}
        self.linger_s = linger_s
        """Least time between two fetches of a bulk topic while records come in fast (see
        ``linger_after``)."""
        self.linger_after = linger_after
        """Wait ``linger_s`` between fetches while it would gather at least this many records
        at the rate of the last fetch's. (0: always wait.)"""
        self.last_poll = 0.0
        """When the consumer last polled Kafka (monotonic seconds; 0: not yet)."""
        self.fetch_max_wait_ms = fetch_max_wait_ms
        """Longest the broker may hold a fetch waiting for more data. Faust's 1,500 ms held
        fetches that long under load although records had arrived (one fetch in flight per
        broker, for the partitions it named), and pushes lagged by seconds."""

    def deliver_in_bulk(self, topic: str, sink: BulkSink) -> None:
        """Hand this topic's fetches to ``sink`` whole, bypassing Faust's streams; register
        before the app starts."""
        self.bulk_sinks[topic] = sink


def faust_worker(app: faust.App, loglevel: str = "warning",
                 logging_config: dict[str, Any] | None = None) -> faust.Worker:
    """The Faust worker that runs ``app``, logging at ``loglevel`` and no lower (or as
    ``logging_config`` says, a :func:`logging.config.dictConfig`).

    Faust's worker draws a terminal spinner that turns on every log record; to see them all
    it sets the root logger to DEBUG, whatever ``loglevel`` says. Every ``log.debug`` in
    aiokafka's fetch loop then builds a record (caller lookup included) only for the handler
    to drop it: 3 % of a busy worker's samples. A worker has no terminal to spin on.
    """
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False,
                          logging_config=logging_config)
    worker.spinner = None
    return worker


def no_arguments(method: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A bound method as the plain coroutine function Faust's ``task`` and ``timer`` take
    (they pass the app to a function whose code has arguments, and a method's has ``self``)."""
    async def run() -> None:
        await method()

    run.__name__ = run.__qualname__ = method.__name__
    return run
