"""A worker's batch loop: each fetch of the events topic through the pipeline and into the
shared store, exactly once (see ``docs/production.md``).

A fetch (:class:`~distributed.transport.Fetched`: what arrived since the last one, up to
``max_batch`` events) is split by partition; records below a partition's stored offset
(already applied before a crash or a rebalance) are dropped; invalid ones go to the
dead-letter topic with the reason; the rest feed the same
:class:`~stream.pipeline.SessionPipeline` as the embedded runtime, whose journal is then
applied to the store with the batch's offsets, atomically.

State: matrices, popularity counts and each touched session's window and changed open runs go
to the store with the batch's offsets; the loop keeps sessions in memory as a cache, drops it
when partitions are revoked, and loads sessions it does not hold from the store. Batch N is
stored while batch N+1 is applied in memory; offsets are committed to Kafka only once the
store has a batch, so a crash loses nothing (``docs/production.md``, "Two stages per
batch"). An error inside this loop exits the process (:func:`~distributed.retry.die`).

Lists: once a batch is stored, its touched sessions are due for new lists; a
:class:`~distributed.background.ListAnnouncer` apart from the loop announces those some web
node's client watches. Re-rankers (when the pipeline has them) judge and learn inside the
batch, with candidates read from the shared store (at most ``view_max_age_s`` old), so
learning sees the features serving sees; their models are mixed with the other workers'
through the store (:class:`~distributed.serving.SharedModels`).

The loop knows the consumer only through :class:`Feed` and the store only through
:class:`~distributed.store_api.SharedStore`: :mod:`distributed.worker` wires it to Faust and
Redis, and ``tests/test_batch_loop.py`` runs it against memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any, Protocol

import redis
from faust.types import TP

from distributed.background import Compactor, ListAnnouncer
from distributed.batch import Prepared, batch_features, journaling_pipeline, take_for_store
from distributed.config import WorkerConfig
from distributed.retry import REDIS_DOWN, die, with_retry, with_retry_async
from distributed.serving import FeatureCache, RowCache, SharedModels
from distributed.store_api import OffsetConflict, SharedStore
from distributed.transport import Fetched
from distributed.worker_stats import WorkerStats
from online_models.sessions import SessionState
from stream.events import Event, EventError
from stream.pipeline import Features, PipelineConfig
from stream.wire import decode

log = logging.getLogger("liverec.worker")


class Feed(Protocol):
    """What the batch loop needs of the events topic's consumer."""

    def generation(self) -> int:
        """The consumer group's generation now (a fetch from an older one is stale)."""

    def highwater(self, tp: TP) -> int | None:
        """The partition's end offset as last fetched (None: not known yet)."""

    async def dead_letter(self, value: bytes, reason: str) -> None:
        """Keep a record the loop could not read, with the reason."""

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Tell Kafka the next offsets to read of these partitions."""


class BatchLoop:
    """The state of a worker's batch loop, and its stages as methods.

    A fetch goes through the stages in order: :meth:`stage` (drop what the store has, reject
    what is invalid, read what applying needs), :meth:`apply` (the pipeline, in memory),
    :meth:`store` (the batch in the store, overlapping the next batch's apply; :meth:`settle`
    waits for it). Apart from the loop, a :class:`~distributed.background.ListAnnouncer`
    announces watched sessions' lists and a :class:`~distributed.background.Compactor`
    compacts row logs. :meth:`forget` drops what may be stale when partitions are revoked or
    the store refuses a batch.
    """

    def __init__(self, settings: WorkerConfig, config: PipelineConfig, shared: SharedStore,
                 feed: Feed, topic: str,
                 fail: Callable[[BaseException], Any] = die) -> None:
        self.settings = settings
        self.config = config
        self.shared = shared
        self.feed = feed
        self.topic_name = topic
        self.retry = partial(with_retry, patience_s=settings.redis_patience_s)
        self.retry_async = partial(with_retry_async, patience_s=settings.redis_patience_s)
        self.pipeline = pipeline = journaling_pipeline(config)
        self.stats = WorkerStats()
        self.reranker = pipeline.reranker
        self.models = (SharedModels(shared, self.reranker, interval_s=settings.model_sync_s)
                       if self.reranker is not None else None)
        # What other workers stored shows after at most ``view_max_age_s``: in the learning
        # features, and in the rows the pushed lists read (this worker's own batches keep
        # those current).
        self.feature_cache = FeatureCache(max_age_s=settings.view_max_age_s)
        self.row_cache = RowCache(max_age_s=settings.view_max_age_s)

        # Batches move through two stages: while batch N is being stored, the loop applies
        # batch N+1 in memory; N+1 is sent as soon as N is stored, since N+1's lists wait for
        # it. The loop waits for a store only to read from it (sessions it does not hold,
        # features): in Redis a read would queue behind the script and block the loop; when
        # it reads, it does so before sending the pending batch. Sessions of a batch not yet
        # stored are in memory, so those reads never miss its writes.
        self.generation = 0
        """How many times the loop dropped its state (:meth:`forget`)."""
        self.pending: Prepared | None = None  # applied in memory, not sent
        self.in_flight: asyncio.Task[Fetched | None] | None = None  # sent, not yet stored
        self.fetch_waiting = False  # a fetch came in since the loop last took one
        self.lock = asyncio.Lock()  # one coroutine at a time moves batches between stages
        self.flushes: set[asyncio.Task[None]] = set()
        self.announcer = ListAnnouncer(shared, config, self.reranker, self.row_cache,
                                       self.stats, self.retry, settings.watch_sweep_s)
        self.compactor = Compactor(shared, self.stats, self.retry, self.retry_async)
        self.stored: dict[TP, int] = {}  # per partition, the next offset the store wants
        self.fail = fail
        """What an error inside the loop does: exit the process (:func:`~distributed.retry.
        die`); a test records it instead."""

    # -- the loop, top to bottom ---------------------------------------------------------------
    async def run(self, fetches: AsyncIterator[Fetched]) -> None:
        """Read, apply and store batches, the store overlapping the next apply.

        Offsets are committed to Kafka (:meth:`commit_stored`) only once the store has a
        batch, so a crash in between loses nothing: Kafka redelivers, and the stored offsets
        skip what the store has.
        """
        try:
            async for fetched in fetches:
                self.fetch_waiting = False
                async with self.lock:
                    if self.in_flight is not None and self.in_flight.done():
                        await self.settle()  # collect the outcome (or redo a refused batch)
                    batch = await self.stage(fetched)
                    if self.pending is not None:  # Redis is behind: one batch waits, not two
                        await self.settle()
                        await self.send_pending()
                    # The script in flight runs on while a fetch is staged; if Redis
                    # refused it, the state the batch was staged on is gone.
                    while batch is not None and batch.generation != self.generation:
                        batch = await self.stage(fetched)
                    if batch is not None:
                        self.apply(batch)
                        self.pending = batch
                if self.pending is not None:
                    flush = asyncio.create_task(self.flush_when_stored(self.pending))
                    self.flushes.add(flush)  # the loop keeps only weak references to tasks
                    flush.add_done_callback(self.flushes.discard)
        except Exception as exc:
            self.fail(exc)

    async def flush_when_stored(self, batch: Prepared) -> None:
        """Send a pending batch as soon as the one in flight is stored (its lists wait for
        it), unless a fetch came in meanwhile: the batch loop then sends it itself, at once
        or, if that fetch needs reads from Redis, after them, so that they do not queue
        behind the script (during a catch-up, sending first halved the overlap of Redis and
        the loop)."""
        if self.in_flight is not None:
            await asyncio.wait([self.in_flight])
        if self.pending is not batch or self.fetch_waiting:
            return
        async with self.lock:
            if self.pending is batch:
                await self.settle()
                await self.send_pending()

    async def settle(self) -> None:
        """Wait until no script is in flight; redo a batch the script refused (with the lock
        held)."""
        redone = False
        while self.in_flight is not None:
            clock = time.perf_counter()
            task, self.in_flight = self.in_flight, None
            redo = await task
            self.tick(clock, "wait")
            if redo is not None and redone:  # refused twice: the offsets have a gap
                self.fail(RuntimeError("a batch applied again from the store was refused "
                                       "again"))
            redone = redo is not None
            if redo is not None and (batch := await self.stage(redo)) is not None:
                self.apply(batch)
                self.in_flight = await self.start_store(batch)

    async def send_pending(self) -> None:
        """Start the pending batch's script (with the lock held, nothing in flight)."""
        batch, self.pending = self.pending, None
        if batch is None:
            return
        if batch.generation != self.generation:  # the state it was applied to was dropped
            batch = await self.stage(batch.fetched)
            if batch is None:
                return
            self.apply(batch)
        self.in_flight = await self.start_store(batch)

    async def drain(self) -> None:
        """Store the pending batch and wait until nothing is in flight: a stream that ended
        (a test's), or a worker stopping, leaves nothing applied only in memory."""
        async with self.lock:
            await self.settle()
            await self.send_pending()
            await self.settle()

    async def start_store(self, batch: Prepared) -> asyncio.Task[Fetched | None]:
        """Send a batch's script to Redis, and wait for its outcome in a task."""
        assert batch.encoded is not None, "a batch is applied before it is stored"
        (topic, partition), (_, end) = next(iter(batch.offsets.items()))
        batch.number = self.row_cache.sent(topic, partition, end)
        try:
            outcome = await self.shared.send_apply(batch.encoded)
        except REDIS_DOWN as exc:
            log.warning("Redis unavailable (%s); the batch will wait for it", exc)
            outcome = None
        task = asyncio.create_task(self.store(batch, outcome))
        task.add_done_callback(self._crash_on_error)
        return task

    async def stage(self, fetched: Fetched) -> Prepared | None:
        """Drop what is already applied, send what is invalid to the dead-letter topic, and
        read from Redis what applying the rest needs (sessions, the re-rankers' features).

        None when nothing is left to apply, or when the fetch is from before a rebalance
        (Faust then delivers its records again, from the committed offsets). Reads wait for
        the script in flight, which may be refused and drop the state: the fetch is then
        staged afresh.
        """
        if fetched.generation != self.feed.generation():
            return None
        clock = time.perf_counter()
        batch = Prepared(self.generation, fetched)
        skipped = 0
        rejects: list[tuple[bytes, str]] = []
        for tp, records in fetched.records.items():
            partition = tp.partition
            next_offset = self.stats.offsets.get(partition)
            if next_offset is None:
                next_offset = await self.retry(self.shared.stored_offset, self.topic_name,
                                               partition) or 0
                self.stats.offsets[partition] = self.stored[tp] = next_offset
            if records[0].offset < next_offset:
                fresh = [r for r in records if r.offset >= next_offset]
                skipped += len(records) - len(fresh)
                if not fresh:
                    continue
                records = fresh
            batch.offsets[(self.topic_name, partition)] = (records[0].offset,
                                                           records[-1].offset + 1)
            for record in records:
                try:
                    event = decode(record.value)
                except EventError as exc:
                    rejects.append((record.value or b"", str(exc)))
                    continue
                batch.events.append(event)
                batch.arrived.setdefault(event.session, record.timestamp)
            batch.lanes.append((partition, len(batch.events)))
        sessions = self.pipeline.sessions
        missing = [s for s in {e.session for e in batch.events} if s not in sessions]
        if (missing or self.models is not None) and self.in_flight is not None:
            # Reads would queue behind the script in Redis, and block the loop meanwhile.
            waited = time.perf_counter()
            await self.settle()  # timed as "wait"
            clock += time.perf_counter() - waited
            if batch.generation != self.generation:  # the script was refused: state dropped
                return await self.stage(fetched)
            missing = [s for s in missing if s not in sessions]
        self.stats.skipped += skipped
        self.stats.rejected += len(rejects)
        for value, reason in rejects:
            await self.feed.dead_letter(value, reason)
        if not batch.offsets:
            return None
        await self.load_sessions(missing, batch)
        if self.models is not None:
            if not self.models.started:
                await self.retry(self.models.start)
            batch.features = await self.retry(self.batch_features, batch.events)
        self.tick(clock, "load")
        return batch

    def apply(self, batch: Prepared) -> None:
        """Run a staged batch through the pipeline and take what Redis must store."""
        clock = time.perf_counter()
        touched: set[int] = set()
        start = 0
        for partition, end in batch.lanes:
            touched |= self.pipeline.apply(batch.events[start:end], features=batch.features,
                                           lane=partition)
            start = end
        batch.journal, batch.states, batch.encoded = take_for_store(
            self.pipeline, touched, self.shared, batch.offsets, len(batch.events))
        for (_, partition), (_, end) in batch.offsets.items():
            self.stats.offsets[partition] = end  # the next batch starts here
        self.tick(clock, "apply")

    async def store(self, batch: Prepared,
                    outcome: Callable[[], Awaitable[bool]] | None) -> Fetched | None:
        """Wait for a batch's script (sent, unless Redis was down), mark its offsets to
        commit, announce its lists.

        Returns the records to apply again when the script refused the batch (another
        worker stored part of it, around a rebalance): this worker's state is stale then.
        """
        clock = time.perf_counter()
        stats = self.stats
        assert batch.encoded is not None, "a batch is applied before it is stored"
        try:
            try:
                if outcome is None:
                    raise redis.ConnectionError("the script was not sent")
                applied = await outcome()
            except REDIS_DOWN as exc:
                # Sent again: if Redis had applied it before the connection broke, the
                # stored offsets refuse it, and the worker reloads what Redis has.
                log.warning("Redis unavailable (%s); retrying the batch", exc)
                applied = await self.retry_async(self.shared.apply_async, batch.encoded)
        except OffsetConflict:
            applied = False
        if not applied:
            log.warning("batch %s was applied elsewhere; reloading state", batch.offsets)
            self.forget()
            return batch.fetched
        self.row_cache.add(batch.journal, batch=batch.number)
        self.compactor.add(batch.encoded.compact, batch.encoded.forgotten)
        for (_, partition), (_, end) in batch.offsets.items():
            tp = TP(self.topic_name, partition)
            self.stored[tp] = end
            highwater = self.feed.highwater(tp)
            if highwater is not None:
                stats.lag[partition] = max(0, highwater - end)
        stats.processed += len(batch.events)
        stats.batches += 1
        stats.stored_at = time.monotonic()
        if self.models is not None:
            if not await self.retry(self.models.save_due):
                await self.retry(self.models.refresh)
            stats.model_version = self.models.version
        reranker = self.pipeline.reranker
        stats.judging = {**self.pipeline.prequential.stats(),
                         **(reranker.stats() if reranker else {})}
        self.tick(clock, "store")
        self.announcer.add(batch.states, batch.arrived)
        return None

    def tick(self, since: float, phase: str) -> float:
        now = time.perf_counter()
        self.stats.seconds[phase] += now - since
        return now

    # -- what the loop reads ----------------------------------------------------------------
    def batch_features(self, events: list[Event]) -> Features:
        """The shared store's rows and popularity for the candidates the re-rankers will
        judge in this batch (:func:`~distributed.batch.batch_features`)."""
        assert self.reranker is not None
        return batch_features(events, self.pipeline, self.reranker, self.shared,
                              self.feature_cache)

    async def load_sessions(self, missing: list[int], batch: Prepared) -> None:
        """Bring sessions this worker has not seen since the last rebalance from Redis."""
        if not missing:
            return
        found = await self.retry(self.shared.session_states, missing)
        lane_of: dict[int, int] = {}
        start = 0
        for partition, end in batch.lanes:
            lane_of.update((e.session, partition) for e in batch.events[start:end])
            start = end
        window = self.config.covis.window
        for session, (blob, runs) in found.items():
            self.pipeline.sessions.put(session, SessionState.from_bytes(blob, window, runs),
                                       lane_of[session])

    async def commit_stored(self) -> None:
        """Tell Kafka where Redis is, so that a restarted group resumes near there (Redis's
        offsets, not Kafka's, decide what is applied: a stale commit costs only skipping)."""
        try:
            await self.feed.commit(dict(self.stored))
        except Exception as exc:  # a rebalance under way: the next tick commits
            log.info("offsets not committed (%s); retrying in %s s", exc,
                     self.settings.commit_every_s)

    # -- rebalances -------------------------------------------------------------------------
    def forget(self) -> None:
        """Drop everything that may be stale: sessions, offsets, lists not yet announced."""
        self.generation += 1
        self.pipeline.sessions.clear()
        self.stats.offsets.clear()
        self.stats.lag.clear()
        self.stored.clear()
        self.announcer.due.clear()
        self.row_cache.unsettled = None  # a refused batch is never added

    async def on_revoked(self) -> None:
        if self.stats.assigned:
            log.info("partitions of %s revoked: %s", self.topic_name, self.stats.assigned)
        # Partitions may move: what this worker holds of their sessions may go stale. The
        # batch in flight is stored and committed first, so the next owner starts after
        # it; the pending one is dropped uncommitted, so Kafka delivers it again.
        async with self.lock:
            await self.settle()
            self.pending = None
            await self.commit_stored()
            self.forget()
            self.stats.assigned = []

    def on_assigned(self, assigned: Iterable[TP]) -> None:
        self.stats.assigned = sorted(tp.partition for tp in assigned
                                     if tp.topic == self.topic_name)
        log.info("partitions of %s assigned: %s", self.topic_name, self.stats.assigned or "none")

    def _crash_on_error(self, task: asyncio.Task[Any]) -> None:
        """A batch that cannot be stored (Redis gone for good) stops the worker."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.fail(exc)
