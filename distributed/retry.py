"""Waiting out Redis, and giving up: the worker's two answers to a failure in its loop."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import redis

log = logging.getLogger("liverec.worker")
#: Errors that mean Redis is away (restarting, loading): worth waiting for.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
T = TypeVar("T")


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
