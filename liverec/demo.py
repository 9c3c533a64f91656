"""``liverec demo``: replay → pipeline → web page, in one process, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Iterable, Sequence

from liverec.collector import keep_collections_short
from liverec.runtime import EmbeddedRuntime
from liverec.server import Server, make_server
from liverec.settings import Settings
from producers.replay import parse_speed, replay_events
from stream.events import Event
from web.catalog import Catalog


def bind(host: str, port: int) -> socket.socket:
    """Listen on host:port ourselves, so a busy port is a clear error before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only turns Nagle off (TCP_NODELAY) on connections whose
    # socket declares IPPROTO_TCP, and with Nagle on, a keep-alive response written in two
    # parts waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}; "
                      "choose another --port (0 picks a free one)") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def choose_speed(text: str, events: list[Event], rate: float) -> float | None:
    """``auto``: the speed at which the data averages ``rate`` events per second."""
    if text != "auto":
        return parse_speed(text)
    if len(events) < 2 or events[-1].ts <= events[0].ts:
        return None
    span_s = (events[-1].ts - events[0].ts) / 1000.0
    return span_s * rate / len(events)


def page_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    return f"http://{shown}:{port}/"


async def run_demo(
    settings: Settings,
    events: Iterable[Event],
    total: int,
    *,
    source: str,
    speed: str = "auto",
    rate: float = 50.0,
    catalog: Catalog | None = None,
) -> int:
    """Serve the page and replay ``events`` (in time order) through the pipeline."""
    listed = list(events)
    pace = choose_speed(speed, listed, rate)
    collector = asyncio.create_task(keep_collections_short(), name="gc")
    runtime = EmbeddedRuntime(settings, catalog)
    sock = bind(settings.host, settings.port)
    server: Server = make_server(runtime.app, settings.host, settings.port,
                                 ws_max_size=settings.ws_max_message_bytes)
    runtime.start()
    serve = asyncio.create_task(server.serve(sockets=[sock]), name="web")
    listening = asyncio.create_task(server.listening.wait())
    await asyncio.wait([serve, listening], return_when=asyncio.FIRST_COMPLETED)
    if serve.done():
        listening.cancel()
        serve.result()
        return 1
    port = sock.getsockname()[1]
    pace_text = "max speed" if pace is None else f"{pace:,.0f}x real time"
    print(f"liverec demo: open {page_url(settings.host, port)}  (Ctrl-C to stop)\n"
          f"  replaying {source} at {pace_text}", flush=True)

    async def publish(batch: Sequence[Event]) -> None:
        await runtime.publish(batch)
        runtime.replay.sent(batch)

    async def replay() -> None:
        if listed:
            runtime.replay_clock(listed[0].ts, pace)
            runtime.replay.start(total, listed[0].ts, listed[-1].ts, pace)
        stats = await replay_events(listed, publish, speed=pace, total=total,
                                    progress=sys.stderr.isatty(), batch_size=200)
        if listed:  # from the replay's last event on, the stream's time runs as real time
            runtime.replay_clock(listed[-1].ts, 1.0)
        listed.clear()
        runtime.replay.finish()
        print(f"  replay finished: {stats.events:,} events in {stats.seconds:,.0f} s; the page "
              "stays up for you to shop", flush=True)

    replayer = asyncio.create_task(replay(), name="replay")
    started = time.monotonic()
    await server.stop_requested.wait() if not serve.done() else None
    await serve
    for task in (replayer, collector):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await runtime.stop()
    stats = runtime.pipeline.stats()
    print(f"\nstopped after {time.monotonic() - started:,.0f} s: {stats['events']:,} events, "
          f"{stats['sessions']:,} live sessions, {runtime.hub.pushes:,} pushes", flush=True)
    return 0
