"""Shared fixtures. Real data comes from ``../shared/data`` beside the checkout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_page import CHROMIUM_ARGS, chromium_path, open_page, publish

from producers.generator import GeneratorConfig, generate_sessions

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LIVEREC_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public samples (OTTO, YOOCHOOSE, Diginetica). Missing data is a failure."""
    if not (SHARED_DATA / "otto-sample" / "train.jsonl").exists():
        pytest.fail(f"real data samples not found at {SHARED_DATA}; set LIVEREC_SHARED_DATA")
    return SHARED_DATA


#: The live servers' secret and service key: tests post as a shop's backend would.
SECRET = "test-secret"
INGEST_KEY = "test-ingest-key"
SERVICE = {"Authorization": f"Bearer {INGEST_KEY}"}


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

        self.settings = settings or Settings(port=0, secret=SECRET, ingest_key=INGEST_KEY)
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


def _require_services() -> bool:
    """In CI (or when asked) a missing Kafka/Redis fails the tests that need it."""
    return bool(os.environ.get("CI") or os.environ.get("LIVEREC_REQUIRE_SERVICES"))


def _answers(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _service_port(name: str, variable: str, default: int) -> int:
    """The port of a local service that must answer: skip without it, fail where required."""
    port = int(os.environ.get(variable, str(default)))
    if not _answers("127.0.0.1", port):
        message = f"{name} does not answer on 127.0.0.1:{port}: run deploy/local/services.sh up"
        if _require_services():
            pytest.fail(message)
        pytest.skip(message)
    return port


@pytest.fixture(scope="session")
def kafka_url() -> str:
    """The broker of ``deploy/local/services.sh up`` (LIVEREC_KAFKA_PORT, default 9092)."""
    return f"kafka://127.0.0.1:{_service_port('Kafka', 'LIVEREC_KAFKA_PORT', 9092)}"


@pytest.fixture
def unique_prefix(request: pytest.FixtureRequest) -> str:
    """A topic prefix / consumer group of this test's own, so tests never see each other."""
    import uuid

    return f"test-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}-".replace("[", "-").replace(
        "]", "")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis of ``deploy/local/services.sh up`` (LIVEREC_REDIS_PORT, default 6379)."""
    return f"redis://127.0.0.1:{_service_port('Redis', 'LIVEREC_REDIS_PORT', 6379)}/0"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, unique_prefix: str) -> Iterator[Any]:
    """Each shared store in turn (``distributed.store_api``): in memory, and in the Redis of
    ``deploy/local/services.sh up`` (with its asyncio client, as a worker's)."""
    from distributed.memory_store import MemoryStore

    if request.param == "memory":
        yield MemoryStore(unique_prefix)
        return
    import redis
    import redis.asyncio

    from distributed.store import RedisStore

    url = request.getfixturevalue("redis_url")
    shared = RedisStore(redis.Redis.from_url(url), unique_prefix,
                        async_client=redis.asyncio.Redis.from_url(url))
    yield shared
    shared.clear()


# -- the browser tests' fixtures (tests/e2e_page.py has their helpers) ------------------

@pytest.fixture
def server(live_server: Any) -> Any:
    """A live server that has applied 300 generated sessions, its clock at their time."""
    sessions = generate_sessions(GeneratorConfig(sessions=300, items=500, seed=1))
    events = sorted((e for _, evs in sessions for e in evs), key=lambda e: e.ts)
    publish(live_server, events)
    # The shopper's events take the stream's time, so they fall among the generated ones
    # instead of years after them.
    live_server.runtime.replay_clock(events[0].ts, None)
    return live_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    opened = open_page(browser)
    yield opened
    opened.context.close()
