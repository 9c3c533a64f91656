"""The Faust worker: consume ``{prefix}events`` in batches, feed the pipeline, sum the
co-visitation matrices in Redis exactly once (see ``docs/production.md``).

The consumer hands the agent each fetch of the events topic whole
(:mod:`stream.faust_transport`): a batch is what arrived since the last fetch, up to
``max_batch`` events. It is split by partition; records below a partition's stored offset
(already applied before a crash or a rebalance) are dropped; invalid ones go to
``{prefix}events.dlq`` with the reason; the rest feed the same
:class:`~stream.pipeline.SessionPipeline` as the embedded runtime, whose journal is then
applied to Redis with the batch's offsets in one script.

State: matrices, popularity counts and each touched session's window and changed open runs go
to Redis in the same script as the batch's offsets; a worker keeps sessions in memory as a
cache, drops it when partitions are revoked, and loads sessions it does not hold from Redis.
Batch N's script runs in Redis while batch N+1 is applied in memory; offsets are committed to
Kafka only once Redis has a batch, so a crash loses nothing (see ``docs/production.md``,
"Two stages per batch"). An error inside this loop exits the process (:func:`die`).

Lists: once a batch is stored, its touched sessions are due for new lists. A task apart from
the batch loop takes every session due at once, computes the lists of those some web node's
client watches (from the shared state, :mod:`stream.serving`), stores them and announces them
on the ``{prefix}lists`` channel. Web nodes push them to their clients.

Re-rankers (when the pipeline has them): a worker judges and learns test-then-train inside the
batch like the embedded pipeline, with candidates read from the shared store (at most ten
seconds old, :func:`~stream.serving.store_features`), so learning sees the features serving
sees rather than this worker's share of the matrices.
Its models are saved to Redis on a clock, mixed with the other workers' (:class:`~stream.
serving.SharedModels`), and every worker and web node serves the newest saved snapshot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import faust
import orjson
import redis
import redis.asyncio
from faust.types import TP

from online_models.candidates import candidate_rows
from online_models.redis_store import EncodedBatch, OffsetConflict, RedisStore
from online_models.rows import CellJournal
from online_models.sessions import SessionState
from stream.events import Event, EventError
from stream.faust_transport import DirectConsumer, DirectTransport, Fetched
from stream.kafka_bus import decode
from stream.metrics import Histogram, prequential_families
from stream.pipeline import Features, PipelineConfig, SessionPipeline
from stream.serving import (
    FeatureCache,
    RowCache,
    SharedModels,
    lists_from_store,
    store_features,
)

log = logging.getLogger("liverec.worker")
#: The phases of a batch whose time the worker reports.
PHASES = ("load", "apply", "wait", "store", "lists", "compact")
#: Fetches wait the batch window while it would gather this many records at the current
#: rate (at least 200 events/s for a 10 ms window): batches then grow with the load. Below
#: that a worker fetches at once; at 100 events/s a fixed wait cost ~15 ms of push latency.
#: Deciding on the last fetch's size alone was tried: after a quarter of the batch, batches
#: shrank at 300 events/s (p50 worse in pairs of runs); after 2 records, a single-record
#: fetch is followed by another at once, which can lock a worker into batches of one event
#: (docs/benchmarks.md).
LINGER_AFTER = 2
#: How stale the popular fill of a worker's lists may be. Re-read every second, the popular
#: top lists (ties included) were a seventh of the lists' time at 300 events/s. (The rows
#: the lists read have their own age, ``LIVEREC_ROWS_MAX_AGE_S``.)
POPULAR_MAX_AGE_S = 5.0
#: A worker's most events per batch (``LIVEREC_MAX_BATCH`` overrides it). Batches this big
#: only form when events piled up (a replay, a catch-up): a session's window is written and a
#: row's increments appended once per batch, so 8,000 gave 1.1–1.3 times the events/s of
#: 1,000 (docs/benchmarks.md), for a Redis script of ~85 ms instead of ~20.
WORKER_MAX_BATCH = 8000
#: How often a worker commits to Kafka the offsets Redis has.
COMMIT_EVERY_S = 1.0
#: How often a worker forgets watches no web node renewed (wall-clock ms).
WATCH_SWEEP_MS = 10_000
#: Errors that mean Redis is away (restarting, loading): worth waiting for.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
T = TypeVar("T")


@dataclass
class WorkerStats:
    processed: int = 0
    rejected: int = 0
    skipped: int = 0
    batches: int = 0
    lists_published: int = 0
    model_version: int = 0
    """The version of the re-rankers' snapshot this worker serves (0: none, or no models)."""
    judging: dict[str, int] = field(default_factory=dict)
    """The pipeline's prequential counts (``judged_<objective>``, ``hits_<objective>``) and
    its re-rankers' against their priors (``rerank_*``)."""
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    """Time spent per phase of a batch, summed."""
    offsets: dict[int, int] = field(default_factory=dict)
    assigned: list[int] = field(default_factory=list)
    """The events topic's partitions the group gave this worker."""
    lag: dict[int, int] = field(default_factory=dict)
    """Per partition: messages on the broker not yet applied, as of the last batch."""
    list_delay: Histogram = field(default_factory=Histogram)
    """Seconds from an event's arrival in Kafka to the announcement of its session's lists
    (watched sessions only; the oldest event a list reflects)."""


@dataclass
class Prepared:
    """A batch on its way to Redis: staged (what to apply), then applied (what to store)."""

    generation: int
    """How many times the worker had dropped its state when the batch was staged: one staged
    before a drop was applied to state that may be stale, and is staged again."""
    fetched: Fetched
    """The records of the batch as fetched (again, when Redis refuses it)."""
    events: list[Event] = field(default_factory=list)
    lanes: list[tuple[int, int]] = field(default_factory=list)
    """The events' partitions in order: (partition, index past its last event). Each
    partition is its own lane of the pipeline, expiring sessions by its own time."""
    arrived: dict[int, int] = field(default_factory=dict)
    """Per session, when its first event in the batch reached Kafka (the record's timestamp,
    wall-clock ms)."""
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    features: Features | None = None
    journal: list[CellJournal] = field(default_factory=list)
    states: dict[int, SessionState] = field(default_factory=dict)
    encoded: EncodedBatch | None = None
    """The Redis script's keys and arguments."""
    number: int = 0
    """The row cache's number for the batch, given when its script is sent."""


class WorkerMetrics:
    """Prometheus collector over :class:`WorkerStats`, read at scrape time."""

    def __init__(self, stats: WorkerStats) -> None:
        self.stats = stats

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.stats
        yield CounterMetricFamily("liverec_events_processed", "Events applied by this worker",
                                  value=s.processed)
        yield CounterMetricFamily("liverec_events_rejected",
                                  "Invalid events sent to the dead-letter topic", value=s.rejected)
        yield CounterMetricFamily("liverec_events_skipped",
                                  "Redelivered events already applied", value=s.skipped)
        yield CounterMetricFamily("liverec_worker_batches", "Batches stored in Redis",
                                  value=s.batches)
        yield CounterMetricFamily("liverec_lists_published",
                                  "Watched sessions' lists announced to web nodes",
                                  value=s.lists_published)
        seconds = CounterMetricFamily("liverec_worker_seconds",
                                      "Time spent per phase of a batch", labels=["phase"])
        for phase, value in s.seconds.items():
            seconds.add_metric([phase], value)
        yield seconds
        yield s.list_delay.family(
            "liverec_list_delay_seconds",
            "From an event's arrival in Kafka to the announcement of its session's lists "
            "(watched sessions)")
        yield GaugeMetricFamily("liverec_model_version",
                                "Version of the re-rankers' snapshot served (0: none)",
                                value=s.model_version)
        yield GaugeMetricFamily("liverec_assigned_partitions",
                                "Partitions of the events topic assigned to this worker",
                                value=len(s.assigned))
        yield from prequential_families(s.judging)
        lag = GaugeMetricFamily("liverec_consumer_lag", "Messages not yet applied",
                                labels=["partition"])
        for partition, value in sorted(s.lag.items()):
            lag.add_metric([str(partition)], value)
        yield lag


async def with_retry(call: Callable[..., T], *args: Any, patience_s: float = 300.0) -> T:
    """Run a Redis call, waiting out a restart of Redis.

    Short calls are synchronous and run on the event loop: a local Redis answers in well under
    a millisecond, and a hop to a thread per call costs more than that once the loop is busy
    (the GIL is handed over every 5 ms). Nothing is committed to Kafka before Redis has the
    batch, so waiting is safe; giving up (after ``patience_s``) lets the worker die and Kafka
    redeliver to another one.
    """
    async def attempt() -> T:
        return call(*args)

    return await retrying(attempt, patience_s)


async def with_retry_async(call: Callable[..., Awaitable[T]], *args: Any,
                           patience_s: float = 300.0) -> T:
    """:func:`with_retry` for the asyncio client: a batch's script takes milliseconds of
    Redis's time, during which the loop applies the next batch."""
    return await retrying(lambda: call(*args), patience_s)


async def retrying(attempt: Callable[[], Awaitable[T]], patience_s: float) -> T:
    delay, waited = 0.2, 0.0
    while True:
        try:
            return await attempt()
        except REDIS_DOWN as exc:
            if waited >= patience_s:
                raise
            log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(2.0, delay * 2)


def die(exc: BaseException) -> NoReturn:
    """Stop the worker process at once on an error inside the batch loop.

    Its memory (sessions, the pending batch, journals not yet stored) may be half-updated, and
    Faust would restart the agent on top of it. Nothing is lost by exiting: Kafka's committed
    offsets cover only batches Redis has, so the next worker (or this one, restarted by its
    supervisor) is given the rest again, and Redis's stored offsets skip what it has.
    """
    log.critical("the batch loop failed; exiting so that Kafka redelivers", exc_info=exc)
    logging.shutdown()
    os._exit(70)  # EX_SOFTWARE


def journaling_pipeline(config: PipelineConfig) -> SessionPipeline:
    """The pipeline a worker runs: the matrices live in Redis, so it only journals their
    increments, and its sessions record which runs changed (their runs go to Redis as a log,
    not whole) and its popularity its counts."""
    pipeline = SessionPipeline(config, keep_matrices=False)
    pipeline.sessions.track = True
    return pipeline


def take_for_store(pipeline: SessionPipeline, touched: set[int], shared: RedisStore,
                   offsets: dict[tuple[str, int], tuple[int, int]], events: int
                   ) -> tuple[list[CellJournal], dict[int, SessionState], EncodedBatch]:
    """What Redis must store of a batch the pipeline just applied, taken from it: the
    journals, the touched sessions' states, and the encoded script."""
    journal = pipeline.covis.take_journal()
    counts = pipeline.popularity.take_journal()
    states = {s: state for s in touched if (state := pipeline.sessions.get(s)) is not None}
    # A session's window is rewritten, its runs only appended to (what changed).
    writes = {s: (st.to_bytes(runs=False), *st.take_runs_log()) for s, st in states.items()}
    encoded = shared.encode(journal, offsets, writes, counts,
                            {s: st.max_ts for s, st in states.items()}, events)
    return journal, states, encoded


def faust_worker(app: faust.App, loglevel: str = "warning") -> faust.Worker:
    """The Faust worker that runs ``app``, logging at ``loglevel`` and no lower.

    Faust's worker draws a terminal spinner that turns on every log record; to see them all
    it sets the root logger to DEBUG, whatever ``loglevel`` says. Every ``log.debug`` in
    aiokafka's fetch loop then builds a record (caller lookup included) only for the handler
    to drop it: 3 % of a busy worker's samples. A worker has no terminal to spin on.
    """
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker


def create_worker_app(*, broker: str, store: str, topic_prefix: str, app_id: str,
                      partitions: int, max_batch: int, config: PipelineConfig,
                      batch_window_s: float = 0.01, model_sync_s: float = 5.0,
                      fetch_max_wait_ms: int = 100, rows_max_age_s: float = 30.0) -> faust.App:
    """A Faust app whose agent drives a pipeline; topics must exist before it starts."""
    # Faust wants a data directory even without tables; keep it out of the working tree.
    datadir = Path(tempfile.gettempdir()) / f"liverec-faust-{app_id}"
    app = faust.App(app_id, broker=broker, store="memory://", topic_partitions=partitions,
                    web_enabled=False, consumer_auto_offset_reset="earliest",
                    datadir=str(datadir),
                    # A worker that dies is noticed in seconds, not the default minute.
                    broker_session_timeout=8.0, broker_heartbeat_interval=1.0,
                    # A fetch is a batch (stream/faust_transport.py).
                    broker_max_poll_records=max_batch)
    transport = DirectTransport(app.conf.broker_consumer, app, linger_s=batch_window_s,
                                linger_after=LINGER_AFTER,
                                fetch_max_wait_ms=fetch_max_wait_ms)
    app.transport = transport
    topic_name = f"{topic_prefix}events"
    events_topic = app.topic(topic_name, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw", partitions=partitions)
    # The consumer hands the topic's fetches to the agent through this channel; one waits in
    # it while the agent works, and the consumer holds back the next (which then grows).
    fetches = app.channel(maxsize=1)
    dlq = app.topic(f"{topic_name}.dlq", key_serializer="raw", value_serializer="raw")
    pipeline = journaling_pipeline(config)
    shared = RedisStore(redis.Redis.from_url(store, socket_connect_timeout=2, socket_timeout=10),
                        topic_prefix, session_ttl_ms=config.session_ttl_ms,
                        epoch_shift=config.covis.epoch_half_lives,
                        popularity_max_age_s=POPULAR_MAX_AGE_S,
                        # Batches' scripts: the loop applies the next batch meanwhile.
                        async_client=redis.asyncio.Redis.from_url(
                            store, socket_connect_timeout=2, socket_timeout=10))
    stats = WorkerStats()
    app.liverec_stats = stats  # type: ignore[attr-defined]
    reranker = pipeline.reranker
    models = (SharedModels(shared, reranker, interval_s=model_sync_s)
              if reranker is not None else None)
    # Learning features up to 10 s old: the matrices move little in 10 s, and a 1 s cache
    # left the reads at half the worker's time (docs/benchmarks.md).
    feature_cache = FeatureCache(max_age_s=10.0)
    # Rows for the watched sessions' lists: kept current with this worker's own batches, so
    # re-read only for other workers' increments, after ``rows_max_age_s``.
    row_cache = RowCache(max_age_s=rows_max_age_s)

    # Batches move through two stages: while batch N's script runs in Redis (awaited through
    # the asyncio client), the loop applies batch N+1 in memory; N+1's script is sent as soon
    # as N is stored, since N+1's lists wait for it. The loop waits for a script only to read
    # from Redis (sessions it does not hold, features): a read would queue behind the script
    # and block the loop. When it reads, it does so before sending the pending script.
    # Sessions of a batch not yet stored are in memory, so those reads never miss its writes.
    generation = 0
    pending: Prepared | None = None  # applied in memory, script not sent
    in_flight: asyncio.Task[Fetched | None] | None = None  # script sent, not yet stored
    arrived = False  # a fetch came in since the agent last took one
    lock = asyncio.Lock()  # one coroutine at a time moves batches between the stages
    flushes: set[asyncio.Task[None]] = set()
    agent_started = asyncio.Event()
    # Stored sessions whose lists are not announced: their state, and when the oldest event
    # not yet reflected reached Kafka (wall-clock ms).
    lists_due: dict[int, tuple[SessionState, int]] = {}
    lists_wanted = asyncio.Event()
    compact_due: set[str] = set()  # row logs the scripts found due for compaction
    forgotten_due: set[int] = set()  # epochs whose row logs are to be deleted
    compact_wanted = asyncio.Event()
    last_sweep = 0  # when lapsed watches were last forgotten (wall-clock ms)
    stored: dict[TP, int] = {}  # per partition, the next offset Redis wants: Kafka's to commit

    async def hand_over(fetched: Fetched) -> None:
        """The consumer's callback for the events topic's fetches."""
        nonlocal arrived
        await agent_started.wait()  # the channel drops what it gets before the agent listens
        arrived = True
        await fetches.send(value=fetched)

    transport.deliver_in_bulk(topic_name, hand_over)
    app.topics.add(events_topic)  # subscribe: the topic's records reach the agent in bulk

    @app.agent(fetches)
    async def apply_events(stream: Any) -> None:
        """Read, apply and store batches, the store overlapping the next batch's apply.

        Offsets are committed to Kafka (:func:`commit_stored`) only once Redis has a batch,
        so a crash in between loses nothing: Kafka redelivers, and the stored offsets skip
        what Redis has.
        """
        nonlocal pending, arrived
        agent_started.set()
        try:
            async for fetched in stream:
                arrived = False
                async with lock:
                    if in_flight is not None and in_flight.done():
                        await settle()  # collect the outcome (or redo a refused batch)
                    batch = await stage(fetched)
                    if pending is not None:  # Redis is behind: one batch waits, not two
                        await settle()
                        await send_pending()
                    # The script in flight runs on while a fetch is staged; if Redis
                    # refused it, the state the batch was staged on is gone.
                    while batch is not None and batch.generation != generation:
                        batch = await stage(fetched)
                    if batch is not None:
                        apply(batch)
                        pending = batch
                if pending is not None:
                    flush = asyncio.create_task(flush_when_stored(pending))
                    flushes.add(flush)  # the loop keeps only weak references to tasks
                    flush.add_done_callback(flushes.discard)
        except Exception as exc:
            die(exc)

    async def flush_when_stored(batch: Prepared) -> None:
        """Send a pending batch as soon as the one in flight is stored (its lists wait for
        it), unless a fetch came in meanwhile: the batch loop then sends it itself, at once
        or, if that fetch needs reads from Redis, after them, so that they do not queue
        behind the script (during a catch-up, sending first halved the overlap of Redis and
        the loop)."""
        if in_flight is not None:
            await asyncio.wait([in_flight])
        if pending is not batch or arrived:
            return
        async with lock:
            if pending is batch:
                await settle()
                await send_pending()

    async def settle() -> None:
        """Wait until no script is in flight; redo a batch the script refused (with the lock
        held)."""
        nonlocal in_flight
        redone = False
        while in_flight is not None:
            clock = time.perf_counter()
            task, in_flight = in_flight, None
            redo = await task
            tick(clock, "wait")
            if redo is not None and redone:  # refused twice: the offsets have a gap
                die(RuntimeError("a batch applied again from Redis was refused again"))
            redone = redo is not None
            if redo is not None and (batch := await stage(redo)) is not None:
                apply(batch)
                in_flight = await start_store(batch)

    async def send_pending() -> None:
        """Start the pending batch's script (with the lock held, nothing in flight)."""
        nonlocal pending, in_flight
        batch, pending = pending, None
        if batch is None:
            return
        if batch.generation != generation:  # the state it was applied to was dropped
            batch = await stage(batch.fetched)
            if batch is None:
                return
            apply(batch)
        in_flight = await start_store(batch)

    async def start_store(batch: Prepared) -> asyncio.Task[Fetched | None]:
        """Send a batch's script to Redis, and wait for its outcome in a task."""
        assert batch.encoded is not None, "a batch is applied before it is stored"
        (topic, partition), (_, end) = next(iter(batch.offsets.items()))
        batch.number = row_cache.sent(topic, partition, end)
        try:
            outcome = await shared.send_apply(batch.encoded)
        except REDIS_DOWN as exc:
            log.warning("Redis unavailable (%s); the batch will wait for it", exc)
            outcome = None
        task = asyncio.create_task(store_batch(batch, outcome))
        task.add_done_callback(crash_on_error)
        return task

    def crash_on_error(task: asyncio.Task[Any]) -> None:
        """A batch that cannot be stored (Redis gone for good) stops the worker."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            die(exc)

    async def stage(fetched: Fetched) -> Prepared | None:
        """Drop what is already applied, send what is invalid to the dead-letter topic, and
        read from Redis what applying the rest needs (sessions, the re-rankers' features).

        None when nothing is left to apply, or when the fetch is from before a rebalance (Faust
        then delivers its records again, from the committed offsets). Reads wait for the
        script in flight, which may be refused and drop the state: the fetch is then staged
        afresh.
        """
        if fetched.generation != app.consumer_generation_id:
            return None
        clock = time.perf_counter()
        batch = Prepared(generation, fetched)
        skipped = 0
        rejects: list[tuple[bytes, str]] = []
        for tp, records in fetched.records.items():
            partition = tp.partition
            next_offset = stats.offsets.get(partition)
            if next_offset is None:
                next_offset = await with_retry(shared.stored_offset, topic_name,
                                               partition) or 0
                stats.offsets[partition] = stored[tp] = next_offset
            if records[0].offset < next_offset:
                fresh = [r for r in records if r.offset >= next_offset]
                skipped += len(records) - len(fresh)
                if not fresh:
                    continue
                records = fresh
            batch.offsets[(topic_name, partition)] = (records[0].offset,
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
        missing = [s for s in {e.session for e in batch.events} if s not in pipeline.sessions]
        if (missing or models is not None) and in_flight is not None:
            # Reads would queue behind the script in Redis, and block the loop meanwhile.
            waited = time.perf_counter()
            await settle()  # timed as "wait"
            clock += time.perf_counter() - waited
            if batch.generation != generation:  # the script was refused: state dropped
                return await stage(fetched)
            missing = [s for s in missing if s not in pipeline.sessions]
        stats.skipped += skipped
        stats.rejected += len(rejects)
        for value, reason in rejects:
            await dlq.send(value=value, headers={"reason": reason.encode()})
        if not batch.offsets:
            return None
        await load_sessions(missing, batch)
        if models is not None:
            if not models.started:
                await with_retry(models.start)
            batch.features = await with_retry(batch_features, batch.events)
        tick(clock, "load")
        return batch

    def apply(batch: Prepared) -> None:
        """Run a staged batch through the pipeline and take what Redis must store."""
        clock = time.perf_counter()
        touched: set[int] = set()
        start = 0
        for partition, end in batch.lanes:
            touched |= pipeline.apply(batch.events[start:end], features=batch.features,
                                      lane=partition)
            start = end
        batch.journal, batch.states, batch.encoded = take_for_store(
            pipeline, touched, shared, batch.offsets, len(batch.events))
        for (_, partition), (_, end) in batch.offsets.items():
            stats.offsets[partition] = end  # the next batch starts here
        tick(clock, "apply")

    async def store_batch(batch: Prepared,
                          outcome: Callable[[], Awaitable[bool]] | None) -> Fetched | None:
        """Wait for a batch's script (sent, unless Redis was down), mark its offsets to
        commit, announce its lists.

        Returns the records to apply again when the script refused the batch (another
        worker stored part of it, around a rebalance): this worker's state is stale then.
        """
        clock = time.perf_counter()
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
                applied = await with_retry_async(shared.apply_async, batch.encoded)
        except OffsetConflict:
            applied = False
        if not applied:
            log.warning("batch %s was applied elsewhere; reloading state", batch.offsets)
            forget()
            return batch.fetched
        row_cache.add(batch.journal, batch=batch.number)
        if batch.encoded.compact or batch.encoded.forgotten:
            compact_due.update(batch.encoded.compact)
            forgotten_due.update(batch.encoded.forgotten)
            compact_wanted.set()
        for (_, partition), (_, end) in batch.offsets.items():
            tp = TP(topic_name, partition)
            stored[tp] = end
            highwater = app.consumer.highwater(tp)
            if highwater is not None:
                stats.lag[partition] = max(0, highwater - end)
        stats.processed += len(batch.events)
        stats.batches += 1
        if models is not None:
            if not await with_retry(models.save_due):
                await with_retry(models.refresh)
            stats.model_version = models.version
            stats.judging = {**pipeline.prequential.stats(),
                             **(pipeline.reranker.stats() if pipeline.reranker else {})}
        tick(clock, "store")
        for session, state in batch.states.items():
            since = lists_due[session][1] if session in lists_due else batch.arrived[session]
            lists_due[session] = (state, since)
        lists_wanted.set()
        return None

    def tick(since: float, phase: str) -> float:
        now = time.perf_counter()
        stats.seconds[phase] += now - since
        return now

    @app.task
    async def publish_forever() -> None:
        """Announce lists, one round at a time, for every session touched since the last.

        Apart from the batch loop so that computing lists never holds back the next batch's
        script, and coalescing: under load a round covers many batches, and a session
        touched by several of them gets one list, from its latest state (which may include
        a batch applied in memory and not yet stored; a crash re-applies it to the same).
        """
        async def publish_round(due: dict[int, tuple[SessionState, int]]) -> None:
            nonlocal last_sweep
            now = int(time.time() * 1000)
            if now - last_sweep > WATCH_SWEEP_MS:
                last_sweep = now
                await with_retry(shared.forget_lapsed_watches, now)
            await publish_lists(due, now)

        await serve_due(lists_wanted, lists_due, publish_round, "lists")

    @app.task
    async def compact_forever() -> None:
        """Compact the row logs that stored batches found due, apart from the batch loop.

        A compaction changes no row, so it needs no ordering with the batches: one that
        fails or is lost in a crash leaves a longer log that reads the same.
        """
        async def compact(due: set[str]) -> None:
            await with_retry(shared.compact, due)
            if forgotten_due:  # a scan of the keyspace: in a thread, off the event loop
                epochs = forgotten_due.copy()
                forgotten_due.clear()
                await with_retry_async(asyncio.to_thread, shared.forget, epochs)

        await serve_due(compact_wanted, compact_due, compact, "compact")

    async def serve_due(wanted: asyncio.Event, due: Any, work: Callable[[Any], Awaitable[None]],
                        phase: str) -> None:
        """Each time ``wanted`` is set, take everything in ``due`` (a dict or a set the batch
        loop fills) and run ``work`` on it, timed as ``phase``; an error exits the worker."""
        while True:
            await wanted.wait()
            wanted.clear()
            taken = due.copy()
            due.clear()
            clock = time.perf_counter()
            try:
                await work(taken)
            except Exception as exc:
                die(exc)
            tick(clock, phase)

    async def publish_lists(due: dict[int, tuple[SessionState, int]], now: int) -> None:
        """Announce the new lists of the touched sessions some client watches."""
        watched = await with_retry(shared.watched, list(due), now)
        if not watched:
            return
        lists = await with_retry(lists_from_store, shared, {s: due[s][0] for s in watched},
                                 config.list_size, reranker, row_cache,
                                 config.session_lifetime_ms)
        payloads = {s: orjson.dumps(recs.to_json()) for s, recs in lists.items()}
        await with_retry(shared.publish_lists, payloads)
        stats.lists_published += len(payloads)
        announced = time.time() * 1000
        for session in payloads:
            stats.list_delay.observe(max(0.0, announced - due[session][1]) / 1000)

    def batch_features(events: list[Event]) -> Any:
        """The shared store's matrices and popularity, prefetched for the candidates the
        re-rankers will judge in this batch: per session with a judged event, the rows of its
        last ``history`` distinct items at any point of the batch."""
        assert reranker is not None
        judged = {e.session for e in events if reranker.sampled(e.session, e.type)}
        histories: dict[int, list[tuple[int, int, int]]] = {}
        for session in judged:
            state = pipeline.sessions.get(session)
            histories[session] = list(state.recent) if state is not None else []
        added = dict.fromkeys(judged, 0)
        for e in events:
            if e.session in judged:
                histories[e.session].append((e.aid, e.ts, e.type))
                added[e.session] += 1
        base = reranker.config
        rows = [row for session, events_ in histories.items()
                for row in candidate_rows(events_, dataclasses.replace(
                    base, history=base.history + added[session]))]
        own = {aid for events_ in histories.values() for aid, _, _ in events_}
        return store_features(shared, rows, own, base, config.list_size, feature_cache)

    async def load_sessions(missing: list[int], batch: Prepared) -> None:
        """Bring sessions this worker has not seen since the last rebalance from Redis."""
        if not missing:
            return
        found = await with_retry(shared.session_states, missing)
        lane_of: dict[int, int] = {}
        start = 0
        for partition, end in batch.lanes:
            lane_of.update((e.session, partition) for e in batch.events[start:end])
            start = end
        for session, (blob, runs) in found.items():
            pipeline.sessions.put(session, SessionState.from_bytes(blob, config.covis.window,
                                                                   runs), lane_of[session])

    def forget() -> None:
        nonlocal generation
        generation += 1
        pipeline.sessions.clear()
        stats.offsets.clear()
        stats.lag.clear()
        stored.clear()
        lists_due.clear()
        row_cache.unsettled = None  # a refused batch is never added

    async def commit_stored() -> None:
        """Tell Kafka where Redis is, so that a restarted group resumes near there (Redis's
        offsets, not Kafka's, decide what is applied: a stale commit costs only skipping)."""
        try:
            await cast(DirectConsumer, app.consumer).commit_bulk(dict(stored))
        except Exception as exc:  # a rebalance under way: the next tick commits
            log.info("offsets not committed (%s); retrying in %s s", exc, COMMIT_EVERY_S)

    @app.timer(COMMIT_EVERY_S)
    async def commit_on_clock() -> None:
        await commit_stored()

    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Partitions may move: what this worker holds of their sessions may go stale. The
        # batch in flight is stored and committed first, so the next owner starts after
        # it; the pending one is dropped uncommitted, so Kafka delivers it again.
        nonlocal pending
        async with lock:
            await settle()
            pending = None
            await commit_stored()
            forget()
            stats.assigned = []

    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        stats.assigned = sorted(tp.partition for tp in assigned if tp.topic == topic_name)

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    return app
