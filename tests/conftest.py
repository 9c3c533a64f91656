"""Shared fixtures. Real data comes from ``../shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LIVEREC_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public samples (OTTO, YOOCHOOSE, Diginetica). Missing data is a failure."""
    if not (SHARED_DATA / "otto-sample" / "train.jsonl").exists():
        pytest.fail(f"real data samples not found at {SHARED_DATA}; set LIVEREC_SHARED_DATA")
    return SHARED_DATA


class LiveServer:
    """The embedded runtime served by uvicorn on a free port, in a thread with its own loop.

    Tests talk to it over real sockets (HTTP, WebSocket, a browser), as clients would.
    """

    def __init__(self, settings: object | None = None) -> None:
        import asyncio
        import threading

        from liverec.demo import bind
        from liverec.runtime import EmbeddedRuntime
        from liverec.server import make_server
        from liverec.settings import Settings

        self.settings = settings or Settings(port=0)
        self.loop = asyncio.new_event_loop()
        self.runtime = EmbeddedRuntime(self.settings)  # type: ignore[arg-type]
        self._sock = bind("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.server = make_server(self.runtime.app, "127.0.0.1", self.port)
        started = threading.Event()

        async def main() -> None:
            self.runtime.start()
            serve = asyncio.create_task(self.server.serve(sockets=[self._sock]))
            await self.server.listening.wait()
            started.set()
            await serve
            await self.runtime.stop()

        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),),
                                        daemon=True)
        self._thread.start()
        if not started.wait(15):
            raise RuntimeError("live server did not start")

    def call(self, coro: object, timeout: float = 30.0) -> object:
        """Run a coroutine on the server's loop (e.g. publish events) and wait for it."""
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.request_stop)
        self._thread.join(15)


@pytest.fixture
def live_server() -> object:
    server = LiveServer()
    yield server
    server.close()
