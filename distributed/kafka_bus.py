"""The Kafka bus: topic ``{prefix}events``, key = session, value = the event as OTTO json.

Keying by session keeps each session's events in order on one partition, so whoever consumes
that partition owns the session's state. Producers wait for ``acks=all`` with idempotence on:
an acknowledged event is not lost, and a retried one is not written twice.

A message that is not a valid event (not JSON, missing or ill-typed fields, unknown type,
absurd ts, oversize) never reaches the pipeline: it goes to ``{prefix}events.dlq`` with the
reason in a header, is counted, and consumption goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.bus import BusClosed
from stream.events import Event, EventError
from stream.wire import bootstrap_of, decode, encode

log = logging.getLogger("liverec.stream")


class KafkaBus:
    """A bus over one Kafka topic, for one consumer group."""

    def __init__(self, url: str, *, topic: str = "events", group_id: str = "liverec",
                 partitions: int = 4) -> None:
        self.bootstrap = bootstrap_of(url)
        self.topic = topic
        self.dlq_topic = f"{topic}.dlq"
        self.group_id = group_id
        self.partitions = partitions
        self.rejected = 0
        self._producer: AIOKafkaProducer | None = None
        self._closed = False
        self._end: dict[TopicPartition, int] | None = None

    async def ensure_topics(self) -> None:
        """Create the topic (``partitions`` partitions) and its dead-letter topic if missing."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            for name, count in ((self.topic, self.partitions), (self.dlq_topic, 1)):
                try:
                    await admin.create_topics([NewTopic(name, count, 1)])
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                        enable_idempotence=True, linger_ms=1)
            await producer.start()
            self._producer = producer
        return self._producer

    async def publish(self, events: Sequence[Event]) -> None:
        if self._closed:
            raise BusClosed("the bus is closed")
        producer = await self._producer_started()
        sends = []
        for event in events:
            key, value = encode(event)
            sends.append(await producer.send(self.topic, value, key=key))
        if sends:
            await asyncio.gather(*sends)

    async def batches(self, max_batch: int = 1000) -> AsyncIterator[list[Event]]:
        consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, group_id=self.group_id,
            auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=max_batch)
        await consumer.start()
        try:
            while True:
                records = await consumer.getmany(timeout_ms=100, max_records=max_batch)
                batch: list[Event] = []
                for messages in records.values():
                    for message in messages:
                        try:
                            batch.append(decode(message.value))
                        except EventError as exc:
                            await self._dead_letter(message.value, str(exc))
                if batch:
                    yield batch
                if records:
                    await consumer.commit()
                elif self._closed and await self._drained(consumer):
                    return
        finally:
            await consumer.stop()

    async def _dead_letter(self, value: bytes | None, reason: str) -> None:
        self.rejected += 1
        log.warning("event rejected to %s: %s", self.dlq_topic, reason)
        producer = await self._producer_started()
        await producer.send_and_wait(self.dlq_topic, value or b"",
                                     headers=[("reason", reason.encode())])

    async def _drained(self, consumer: AIOKafkaConsumer) -> bool:
        """After close: has this consumer read everything that was on the topic then?"""
        assignment = consumer.assignment()
        if not assignment:
            return False
        if self._end is None:
            self._end = await consumer.end_offsets(list(assignment))
        for tp, end in self._end.items():
            if tp in assignment and await consumer.position(tp) < end:
                return False
        return True

    async def close(self) -> None:
        self._closed = True
        if self._producer is not None:
            await self._producer.flush()
            await self._producer.stop()
            self._producer = None
