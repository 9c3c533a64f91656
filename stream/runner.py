"""Drives a :class:`~stream.pipeline.SessionPipeline` from a bus and reports what changed.

The runner is the embedded twin of the Faust agent: take a batch, apply it, tell listeners
which sessions it touched. Listeners (the WebSocket hub) decide whose lists to recompute.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stream.bus import Bus
from stream.pipeline import SessionPipeline

log = logging.getLogger("liverec.stream")

#: Called after every batch with the touched sessions and the batch's apply-start time; may be
#: a coroutine function. What it returns is otherwise ignored.
Listener = Callable[[set[int], float], Awaitable[object] | object]


@dataclass
class RunnerStats:
    batches: int = 0
    events: int = 0


class PipelineRunner:
    """Consume a bus into a pipeline, one batch at a time."""

    def __init__(self, bus: Bus, pipeline: SessionPipeline, max_batch: int = 1000) -> None:
        self.bus = bus
        self.pipeline = pipeline
        self.max_batch = max_batch
        self.listeners: list[Listener] = []
        self.stats = RunnerStats()

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    async def run(self) -> None:
        """Run until the bus is closed and drained. A failing listener is logged, not fatal."""
        async for batch in self.bus.batches(self.max_batch):
            started = time.perf_counter()
            touched = self.pipeline.apply(batch)
            self.stats.batches += 1
            self.stats.events += len(batch)
            for listener in self.listeners:
                try:
                    result = listener(touched, started)
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # a listener bug must not stop ingestion
                    log.exception("listener %r failed", listener)
            # Let other tasks (HTTP, WebSocket senders) run between batches.
            await asyncio.sleep(0)
