"""A worker's work apart from its batch loop: announcing watched sessions' lists, compacting
row logs. The loop hands work over (``add``) and never waits for it; each runs as a Faust task
that takes everything handed over since its last round, so under load a round covers many
batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from distributed.retry import die, with_retry, with_retry_async
from distributed.serving import RowCache, lists_from_store
from distributed.store_api import SharedStore
from distributed.worker_stats import WorkerStats
from online_models.rerank import Reranker
from online_models.sessions import SessionState
from stream.pipeline import PipelineConfig

#: Runs a Redis call, waiting out a restart (:func:`~distributed.retry.with_retry`).
Retry = Callable[..., Awaitable[Any]]


async def serve_due(wanted: asyncio.Event, due: Any, work: Callable[[Any], Awaitable[None]],
                    phase: str, stats: WorkerStats) -> None:
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
        stats.seconds[phase] += time.perf_counter() - clock


class ListAnnouncer:
    """Computes the lists of stored sessions some web node's client watches, stores them and
    announces them on the lists channel.

    A session touched by several batches since the last round gets one list, from its latest
    state (which may include a batch applied in memory and not yet stored; a crash re-applies
    it to the same), so computing lists never holds back the next batch's script.
    """

    def __init__(self, shared: SharedStore, config: PipelineConfig, reranker: Reranker | None,
                 rows: RowCache, stats: WorkerStats, retry: Retry = with_retry,
                 sweep_s: float = 10.0) -> None:
        self.shared = shared
        self.retry = retry
        self.sweep_ms = int(sweep_s * 1000)
        """Forget watches no web node renewed this often (wall-clock ms)."""
        self.config = config
        self.reranker = reranker
        self.rows = rows
        self.stats = stats
        # Sessions whose lists are not announced: their state, and when the oldest event not
        # yet reflected reached Kafka (wall-clock ms).
        self.due: dict[int, tuple[SessionState, int]] = {}
        self.wanted = asyncio.Event()
        self.last_sweep = 0  # when lapsed watches were last forgotten (wall-clock ms)

    def add(self, states: dict[int, SessionState], arrived: dict[int, int]) -> None:
        """A stored batch's sessions are due for lists; ``arrived``: when each one's first
        event in it reached Kafka."""
        for session, state in states.items():
            due = self.due.get(session)
            self.due[session] = (state, due[1] if due else arrived[session])
        self.wanted.set()

    async def run(self) -> None:
        await serve_due(self.wanted, self.due, self.publish, "lists", self.stats)

    async def publish(self, due: dict[int, tuple[SessionState, int]]) -> None:
        """Announce the new lists of the sessions in ``due`` some client watches."""
        now = int(time.time() * 1000)
        if now - self.last_sweep > self.sweep_ms:
            self.last_sweep = now
            await self.retry(self.shared.forget_lapsed_watches, now)
        watched = await self.retry(self.shared.watched, list(due), now)
        if not watched:
            return
        lists = await self.retry(lists_from_store, self.shared,
                                 {s: due[s][0] for s in watched}, self.config.list_size,
                                 self.reranker, self.rows, self.config.session_lifetime_ms)
        # With when its oldest event reached Kafka: web nodes time their pushes from it.
        payloads = {s: orjson.dumps({**recs.to_json(), "arrived_ms": due[s][1]})
                    for s, recs in lists.items()}
        await self.retry(self.shared.publish_lists, payloads)
        self.stats.lists_published += len(payloads)
        announced = time.time() * 1000
        for session in payloads:
            self.stats.list_delay.observe(max(0.0, announced - due[session][1]) / 1000)


class Compactor:
    """Compacts the row logs stored batches found due and deletes forgotten epochs' logs.

    A compaction changes no row, so it needs no ordering with the batches: one that fails or
    is lost in a crash leaves a longer log that reads the same.
    """

    def __init__(self, shared: SharedStore, stats: WorkerStats, retry: Retry = with_retry,
                 retry_async: Retry = with_retry_async) -> None:
        self.shared = shared
        self.retry = retry
        self.retry_async = retry_async
        self.stats = stats
        self.due: set[str] = set()  # row logs the scripts found due for compaction
        self.forgotten: set[int] = set()  # epochs whose row logs are to be deleted
        self.wanted = asyncio.Event()

    def add(self, logs: list[str], forgotten: list[int]) -> None:
        if logs or forgotten:
            self.due.update(logs)
            self.forgotten.update(forgotten)
            self.wanted.set()

    async def run(self) -> None:
        await serve_due(self.wanted, self.due, self.compact, "compact", self.stats)

    async def compact(self, due: set[str]) -> None:
        await self.retry(self.shared.compact, due)
        if self.forgotten:  # a scan of the keyspace: in a thread, off the event loop
            epochs = self.forgotten.copy()
            self.forgotten.clear()
            await self.retry_async(asyncio.to_thread, self.shared.forget, epochs)
