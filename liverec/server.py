"""Serving the app with uvicorn inside our own event loop, stopping cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI


class Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the signal after shutdown.

    uvicorn re-sends SIGINT to itself once it has stopped, so that a program that only runs the
    server exits as if interrupted. We run other tasks beside it (pipeline, replay) and want to
    stop those in order, so a signal only asks everything to stop.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stop_requested = asyncio.Event()
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        handled: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
        try:
            for sig in handled:
                loop.add_signal_handler(sig, self.request_stop)
        except (NotImplementedError, RuntimeError):  # not the main thread
            handled = ()
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def request_stop(self) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        self.stop_requested.set()


def make_server(app: FastAPI, host: str, port: int, log_level: str = "warning",
                ws_max_size: int = 4096) -> Server:
    """``ws_max_size``: the largest client frame read (clients only send pings)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off",
                            ws="websockets-sansio", ws_ping_interval=20.0, ws_ping_timeout=20.0,
                            # Pushes are a few hundred bytes of JSON: compressing each one
                            # cost both ends CPU (zlib per message) for little bandwidth.
                            ws_per_message_deflate=False,
                            # No banner naming the software and its version to scanners.
                            server_header=False, ws_max_size=ws_max_size,
                            # uvicorn's records go through liverec's handler and format
                            # (LIVEREC_LOG_FORMAT), not handlers of its own.
                            log_config=None)
    return Server(config)
