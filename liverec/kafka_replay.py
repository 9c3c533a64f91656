"""``liverec replay --to kafka://…``: a file's events published to the events topic in time
order, and the replay's progress reported through the store (when ``LIVEREC_STORE`` names a
Redis) so every web node's page shows it (``distributed.figures``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

import orjson

from liverec.settings import Settings
from producers.replay import ReplayProgress, replay_events
from stream.events import Event

log = logging.getLogger("liverec.replay")
#: Seconds between two progress reports while the replay runs.
REPORT_EVERY_S = 1.0


async def replay_to_kafka(settings: Settings, url: str, events: Iterable[Event], total: int,
                          first_ts: int, span_ms: int, speed: float | None,
                          quiet: bool) -> int:
    from distributed.figures import FINISHED_REPLAY_MS, LAPSE_INTERVALS
    from distributed.topic_admin import end_offsets
    from producers.kafka_sink import KafkaSink

    sink = KafkaSink(url, f"{settings.topic_prefix}events", settings.partitions)
    await asyncio.to_thread(sink.ensure_topic)
    held = sum(end - first for first, end in (await end_offsets(url, sink.topic)).values())
    if held:  # a second replay into the same topic counts every event again
        print(f"note: {sink.topic} already holds {held:,} events; this replay adds to them "
              "(deploy/local/cluster.sh reset, or liverec reset, starts from nothing)",
              file=sys.stderr, flush=True)
    progress = ReplayProgress()
    progress.start(total, first_ts, first_ts + span_ms, speed)
    report = _reporter(settings)
    if report is None:
        print("note: LIVEREC_STORE is not a Redis, so the web nodes' pages will not show "
              "this replay's progress", file=sys.stderr, flush=True)
    name = f"{socket.gethostname()}:{os.getpid()}"

    async def tell(lasting_ms: int) -> None:
        if report is not None:
            body = orjson.dumps(progress.to_json())
            try:
                await asyncio.to_thread(report, name, body, int(time.time() * 1000) + lasting_ms)
            except Exception as exc:  # the page misses a figure; the replay goes on
                log.warning("could not report the replay's progress: %s", exc)

    async def reporting() -> None:
        while True:
            await tell(int(LAPSE_INTERVALS * REPORT_EVERY_S * 1000))
            await asyncio.sleep(REPORT_EVERY_S)

    async def publish(batch: Sequence[Event]) -> None:
        await sink.publish(batch)
        progress.sent(batch)

    reporter = asyncio.create_task(reporting())
    try:
        stats = await replay_events(events, publish, speed=speed, total=total,
                                    progress=not quiet, batch_size=1000)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        await sink.close()
    progress.finish()
    await tell(FINISHED_REPLAY_MS)
    print(f"published {sink.sent:,} events to {url} topic {sink.topic} in {stats.seconds:.1f} s "
          f"({stats.rate:,.0f} events/s), all acknowledged (acks=all)")
    return 0


def _reporter(settings: Settings) -> Callable[[str, bytes, int], None] | None:
    """The store's ``report`` for replays, or None when no Redis is configured."""
    if urlsplit(settings.store).scheme not in ("redis", "rediss"):
        return None
    from distributed.store import RedisStore

    store = RedisStore.from_url(settings.store, settings.topic_prefix)

    def report(name: str, body: bytes, until_ms: int) -> None:
        store.report("replay", name, body, until_ms)

    return report
