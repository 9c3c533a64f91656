"""Publishing events to Kafka with kafka-python: the producer side of the production path.

Each event goes to topic ``{prefix}events`` keyed by its session (one session, one partition,
in order), with ``acks=all`` and idempotence, so an acknowledged event survives a broker
restart and a retried send is not written twice. ``flush`` waits for every acknowledgement;
a send the broker refused raises there, so a replay never reports events it lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from stream.events import Event
from stream.wire import bootstrap_of, encode


class KafkaSink:
    """``await sink.publish(events)`` for :func:`producers.replay.replay_events`."""

    def __init__(self, url: str, topic: str, partitions: int = 4) -> None:
        self.bootstrap = bootstrap_of(url)
        self.topic = topic
        self.partitions = partitions
        self.sent = 0
        self._pending: list[Any] = []
        self._producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
            linger_ms=5, batch_size=256 * 1024)

    def ensure_topic(self) -> None:
        """Create the topic with ``partitions`` partitions if it does not exist."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(self.topic, self.partitions, 1),
                                 NewTopic(f"{self.topic}.dlq", 1, 1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()

    async def publish(self, events: Sequence[Event]) -> None:
        send = self._producer.send
        for event in events:
            key, value = encode(event)  # the bus's own wire format
            self._pending.append(send(self.topic, key=key, value=value))
        self.sent += len(events)
        if len(self._pending) >= 50_000:
            await self.flush()

    async def flush(self) -> None:
        """Wait (off the event loop) until the broker acknowledged everything sent."""
        pending, self._pending = self._pending, []
        await asyncio.to_thread(self._producer.flush)
        for future in pending:
            future.get(timeout=0)  # raises if the broker refused this one

    async def close(self) -> None:
        await self.flush()
        await asyncio.to_thread(self._producer.close)
