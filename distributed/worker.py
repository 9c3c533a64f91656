"""A worker of the distributed runtime: the batch loop (:mod:`distributed.batch_loop`) wired to
Faust and Redis.

Faust runs the consumer (subscriptions, rebalances, fetching in its own thread), which hands
each fetch of the events topic whole to an agent (:mod:`distributed.transport`); the agent
runs the batch loop on those fetches. Faust's tasks run the loop's work apart from it (lists,
compaction), its timer commits the offsets Redis has, and its rebalance callbacks tell the
loop which partitions it holds. The loop's state lives in Redis (:class:`~distributed.store.
RedisStore`); see ``docs/production.md``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import faust
import redis
import redis.asyncio
from faust.types import TP

from distributed.batch_loop import BatchLoop
from distributed.config import WORKER_MAX_BATCH, WorkerConfig
from distributed.figures import LAPSE_INTERVALS, worker_report
from distributed.store import RedisStore
from distributed.transport import (
    DirectConsumer,
    DirectTransport,
    Fetched,
    faust_worker,
    no_arguments,
)
from distributed.worker_stats import WorkerMetrics, WorkerStats
from stream.pipeline import PipelineConfig

__all__ = ["WORKER_MAX_BATCH", "Worker", "WorkerConfig", "WorkerMetrics", "WorkerStats",
           "faust_worker"]

log = logging.getLogger("liverec.worker")


class FaustFeed:
    """The batch loop's :class:`~distributed.batch_loop.Feed` from a Faust app: its
    consumer, and the dead-letter topic."""

    def __init__(self, app: faust.App, dead_letters: Any) -> None:
        self.app = app
        self.dead_letters = dead_letters

    def generation(self) -> int:
        return self.app.consumer_generation_id

    def highwater(self, tp: TP) -> int | None:
        return self.app.consumer.highwater(tp)

    async def dead_letter(self, value: bytes, reason: str) -> None:
        await self.dead_letters.send(value=value, headers={"reason": reason.encode()})

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        await cast(DirectConsumer, self.app.consumer).commit_bulk(offsets)


class Worker:
    """A Faust app running a :class:`~distributed.batch_loop.BatchLoop` on the events topic,
    with its state in Redis."""

    def __init__(self, settings: WorkerConfig, config: PipelineConfig) -> None:
        app_id, store, topic_prefix = settings.app_id, settings.store, settings.topic_prefix
        # Faust wants a data directory even without tables; keep it out of the working tree.
        datadir = Path(tempfile.gettempdir()) / f"liverec-faust-{app_id}"
        self.app = app = faust.App(
            app_id, broker=settings.broker, store="memory://",
            topic_partitions=settings.partitions, web_enabled=False,
            consumer_auto_offset_reset="earliest", datadir=str(datadir),
            # No leader election is used: its topic would be one more to consume and create.
            topic_disable_leader=True,
            # Heartbeats well within the session, as Kafka advises (a third at most).
            broker_session_timeout=settings.kafka_session_timeout_s,
            broker_heartbeat_interval=settings.kafka_session_timeout_s / 8,
            # A fetch is a batch (distributed/transport.py).
            broker_max_poll_records=settings.max_batch)
        transport = DirectTransport(app.conf.broker_consumer, app,
                                    linger_s=settings.batch_window_s,
                                    linger_after=settings.linger_records,
                                    fetch_max_wait_ms=settings.fetch_max_wait_ms)
        app.transport = self.transport = transport
        topic_name = f"{topic_prefix}events"
        events_topic = app.topic(topic_name, key_type=bytes, value_type=bytes,
                                 key_serializer="raw", value_serializer="raw",
                                 partitions=settings.partitions)
        # The consumer hands the topic's fetches to the agent through this channel; one waits
        # in it while the agent works, and the consumer holds back the next (which then grows).
        self.fetches = app.channel(maxsize=1)
        dlq = app.topic(f"{topic_name}.dlq", key_serializer="raw", value_serializer="raw")
        timeout = settings.redis_timeout_s
        shared = RedisStore(
            redis.Redis.from_url(store, socket_connect_timeout=timeout, socket_timeout=timeout),
            topic_prefix, session_ttl_ms=config.session_ttl_ms,
            epoch_shift=config.covis.epoch_half_lives,
            popularity_max_age_s=settings.view_max_age_s,
            # Batches' scripts: the loop applies the next batch meanwhile.
            async_client=redis.asyncio.Redis.from_url(store, socket_connect_timeout=timeout,
                                                      socket_timeout=timeout),
            compact_min_bytes=settings.compact_min_bytes)
        self.loop = loop = BatchLoop(settings, config, shared, FaustFeed(app, dlq), topic_name)
        self.shared, self.report_every_s = shared, settings.report_every_s
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        """This worker among the reports of the others."""
        self.stats = loop.stats
        self.agent_started = asyncio.Event()
        self._progress = (time.monotonic(), 0)  # when the last progress line was, and counts

        transport.deliver_in_bulk(topic_name, self.hand_over)
        app.topics.add(events_topic)  # subscribe: the topic's records reach the agent in bulk
        app.agent(self.fetches)(self.agent)
        app.task(no_arguments(loop.announcer.run))
        app.task(no_arguments(loop.compactor.run))
        app.timer(settings.commit_every_s)(no_arguments(loop.commit_stored))
        app.timer(settings.report_every_s)(no_arguments(self.report))
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self.on_assigned)  # type: ignore[arg-type]

    async def hand_over(self, fetched: Fetched) -> None:
        """The consumer's callback for the events topic's fetches."""
        await self.agent_started.wait()  # the channel drops what it gets before the agent
        self.loop.fetch_waiting = True
        await self.fetches.send(value=fetched)

    async def agent(self, stream: Any) -> None:
        self.agent_started.set()
        await self.loop.run(stream)

    async def log_progress(self) -> None:
        """One line for the operator: events/s since the last line, lag, lists announced."""
        stats, now = self.stats, time.monotonic()
        since, processed = self._progress
        self._progress = (now, stats.processed)
        rate = (stats.processed - processed) / max(now - since, 1e-9)
        log.info("%s events applied (%.0f/s), lag %s over partitions %s, %s lists announced, "
                 "%s rejected", f"{stats.processed:,}", rate, f"{sum(stats.lag.values()):,}",
                 stats.assigned or "none", f"{stats.lists_published:,}",
                 f"{stats.rejected:,}")

    async def report(self) -> None:
        """Tell the web nodes this worker's figures (:mod:`distributed.figures`)."""
        stats = self.stats
        body = worker_report(sessions=len(self.loop.pipeline.sessions),
                             lag=sum(stats.lag.values()), rejected=stats.rejected,
                             judging=stats.judging)
        until = int(time.time() * 1000 + LAPSE_INTERVALS * self.report_every_s * 1000)
        try:
            await asyncio.to_thread(self.shared.report, "worker", self.name, body, until)
        except Exception as exc:  # Redis away: the loop's own retries deal with it
            log.debug("could not report figures: %s", exc)

    async def on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        await self.loop.on_revoked()

    async def on_assigned(self, sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        self.loop.on_assigned(assigned)
