"""Operating a deployment's Kafka side: export its input log, and reset it.

``liverec export`` writes the events topic as an OTTO file, page events included, so that
anyone can recompute the matrices from exactly what the workers consumed (``liverec covis
FILE --mode batch``) and compare them with ``liverec covis --from-store``.

``liverec reset`` deletes the topics and the store's keys of one prefix, for a second replay
that starts from nothing instead of doubling every count. Kafka drops a group's committed
offsets of a topic when the topic is deleted, so nothing of the old log survives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from producers.generator import write_jsonl
from stream.events import Event, EventError
from stream.wire import bootstrap_of, decode

#: Group states in which the group has members consuming (``Empty`` and ``Dead`` have none).
_ACTIVE_STATES = {"Stable", "PreparingRebalance", "CompletingRebalance"}


@dataclass
class ExportReport:
    """What ``export`` read and wrote."""

    topic: str
    events: int = 0
    sessions: int = 0
    skipped: int = 0
    """Records that are not events (the workers send these to the dead-letter topic)."""
    first_error: str = ""
    partitions: dict[int, int] = field(default_factory=dict)
    """Records read per partition: every record up to the end offsets seen at the start."""


async def export_topic(url: str, topic: str, out: Path,
                       progress: Callable[[int, int], None] | None = None) -> ExportReport:
    """Write every event of ``topic`` (from its first offset to its end when the export
    starts) to ``out`` as OTTO jsonl: one line per session, its events in time order (ties in
    log order). Reads with no consumer group, so no deployment's offsets move."""
    report = ExportReport(topic)
    sessions: dict[int, list[Event]] = {}
    tps = [TopicPartition(topic, p) for p in await partitions_of(url, topic)]
    report.partitions = dict.fromkeys((tp.partition for tp in tps), 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_of(url), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        await consumer.start()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        total = sum(end.values()) - sum([await consumer.position(tp) for tp in tps])
        pending = {tp for tp in tps if end[tp] > await consumer.position(tp)}
        while pending:
            fetched = await consumer.getmany(*pending, timeout_ms=1000, max_records=10_000)
            for tp, records in fetched.items():
                for record in records:
                    if record.offset >= end[tp]:
                        break
                    report.partitions[tp.partition] += 1
                    try:
                        event = decode(record.value)
                    except EventError as exc:
                        report.skipped += 1
                        report.first_error = report.first_error or f"offset {tp.partition}:" \
                            f"{record.offset}: {exc}"
                        continue
                    sessions.setdefault(event.session, []).append(event)
                    report.events += 1
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
            if progress is not None:
                progress(sum(report.partitions.values()), total)
    finally:
        await consumer.stop()
    report.sessions = len(sessions)
    out.parent.mkdir(parents=True, exist_ok=True)
    ordered = ((session, sorted(events, key=_ts)) for session, events in sorted(sessions.items()))
    await asyncio.to_thread(write_jsonl, out, ordered)
    return report


async def partitions_of(url: str, topic: str) -> list[int]:
    """The topic's partitions, or ValueError when it does not exist. Asking for one topic's
    metadata creates it on a broker that auto-creates topics, so the list comes first."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(url))
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            raise ValueError(f"topic {topic!r} does not exist on {url}")
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for d in described if d["error_code"] == 0
                  for p in d["partitions"])


async def end_offsets(url: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of ``topic``: its first offset still on the broker, and its end."""
    tps = [TopicPartition(topic, p) for p in await partitions_of(url, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_of(url), group_id=None,
                                enable_auto_commit=False)
    try:
        await consumer.start()
        first = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: (first[tp], end[tp]) for tp in tps}


def applied_lag(ends: dict[int, tuple[int, int]], stored: Callable[[int], int | None]
                ) -> dict[int, int]:
    """Per partition: events on the broker the store has not applied yet (``stored``: the
    store's next offset to apply of a partition, None when it applied none)."""
    return {p: end - max(stored(p) or 0, first) for p, (first, end) in sorted(ends.items())}


def _ts(event: Event) -> int:
    return event.ts


async def active_members(url: str, group: str) -> int:
    """Members of ``group`` now (a running worker is one)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(url))
    await admin.start()
    try:
        for attempt in range(20):  # a broker just started has no group coordinator yet
            try:
                described = await admin.describe_consumer_groups([group])
                break
            except KafkaError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        groups = described[0].to_object()["groups"]
        return sum(len(g["members"]) for g in groups if g["state"] in _ACTIVE_STATES)
    finally:
        await admin.close()


async def delete_topics(url: str, topics: list[str]) -> list[str]:
    """Delete those of ``topics`` that exist; return which."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(url))
    await admin.start()
    try:
        present = [t for t in topics if t in set(await admin.list_topics())]
        if present:
            await admin.delete_topics(present)
        # Deletion completes asynchronously; a topic recreated before it has gone fails.
        for _ in range(100):
            if not set(present) & set(await admin.list_topics()):
                break
            await asyncio.sleep(0.1)
        return present
    finally:
        await admin.close()
