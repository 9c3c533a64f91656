"""A Faust transport whose consumer hands fetched messages to the agents without a race per
message.

Faust 0.15's fetcher delivers each message by racing its callback against the consumer's
``suspend_flow`` event (``Service.wait_first``): four tasks and an ``asyncio.wait`` per
message, about 50 µs: over a quarter of the worker's main thread (``docs/benchmarks.md``).
The callback (the conductor's ``on_message``) puts the event in its stream's queue without
blocking (``put_nowait_enhanced``: a full queue pauses the partition instead), so the race
protects almost nothing; here the callback is awaited directly and the flow is checked
between messages. Everything else (fetching in the consumer thread, offsets, acks, gaps,
commits, rebalances) is Faust's own.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

#: Hand the event loop back after this many messages, as Faust's own loop does, so that
#: timers, heartbeats and the agents run while a large fetch is delivered.
YIELD_EVERY = 100


class DirectConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, delivering messages with a direct ``await``."""

    async def _drain_messages(self, fetcher: Any) -> None:
        callback = self.callback
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offset: dict[TP, int | None] = self._read_offset  # type: ignore[assignment]
        acks_enabled_for = self.app.topics.acks_enabled_for
        delivered = 0
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records = self.getmany(timeout=1.0)
                await asyncio.sleep(0)  # getmany may return at once, again and again
                if self.should_stop:
                    break
                async for tp, message in records:
                    offset = message.offset
                    last = read_offset[tp]
                    if last is not None and offset < last:
                        continue  # already delivered before a seek back
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if self.suspend_flow.is_set():
                        break  # a rebalance: the flow resumes from the committed offsets
                    await callback(message)
                    read_offset[tp] = offset
                    delivered += 1
                    if delivered % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise


class DirectTransport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`DirectConsumer`."""

    Consumer: ClassVar[Any] = DirectConsumer
