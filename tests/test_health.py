"""A worker's liveness and readiness: each check fails for its own reason and says so, and the
server answers nothing but its three paths."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from distributed.health import Probes, serve_health
from distributed.worker_stats import WorkerStats


@pytest.fixture
def broker() -> Iterator[tuple[str, int]]:
    """A port that accepts connections, as a reachable broker's does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield listener.getsockname()
    listener.close()


def closed_port() -> tuple[str, int]:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()
    return address


def healthy(broker: tuple[str, int]) -> Probes:
    stats = WorkerStats()
    stats.assigned = [0, 1]
    return Probes(stats, last_poll=time.monotonic, ping_redis=lambda: True, brokers=[broker],
                  stall_s=5, max_lag=100)


def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_healthy_worker_is_alive_and_ready(broker: tuple[str, int]) -> None:
    server = serve_health(healthy(broker), lambda: b"liverec_up 1\n", "127.0.0.1", 0)
    port = server.server_address[1]
    try:
        assert get(port, "/healthz") == (200, {"status": "ok", "checks": {"loop": "ok"}})
        status, body = get(port, "/readyz")
        assert status == 200 and set(body["checks"].values()) == {"ok"}  # type: ignore[union-attr]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as reply:
            assert reply.read() == b"liverec_up 1\n"
        for path in ("/", "/metrics/x", "/admin", "/healthz/../x"):
            assert get(port, path)[0] == 404
    finally:
        server.shutdown()


@pytest.mark.parametrize("failure", ["stall", "partitions", "kafka", "redis", "lag"])
def test_each_dependency_failing_makes_the_worker_unready_and_says_why(
        broker: tuple[str, int], failure: str) -> None:
    probes = healthy(broker)
    if failure == "stall":
        probes.last_poll = lambda: time.monotonic() - 60
        probes.started = time.monotonic() - 60
    elif failure == "partitions":
        probes.stats.assigned = []
    elif failure == "kafka":
        probes.brokers = [closed_port()]
    elif failure == "redis":
        def down() -> None:
            raise ConnectionError("Connection refused")
        probes.ping_redis = down
    else:
        probes.stats.lag = {0: 80, 3: 21}
    server = serve_health(probes, lambda: b"", "127.0.0.1", 0)
    port = server.server_address[1]
    try:
        status, body = get(port, "/readyz")
        checks = body["checks"]
        assert status == 503 and body["status"] == "failing"
        failed = {name for name, reason in checks.items() if reason != "ok"}  # type: ignore[union-attr]
        name = {"stall": "loop"}.get(failure, failure)
        assert failed == {name}
        reason = checks[name]  # type: ignore[index]
        assert {"stall": "no poll", "partitions": "no partitions", "kafka": "Kafka:",
                "redis": "Connection refused", "lag": "101 events behind"}[failure] in reason
        alive = get(port, "/healthz")[0]
        assert alive == (503 if failure == "stall" else 200)  # only a stall is fatal
    finally:
        server.shutdown()


def test_a_stored_batch_counts_as_progress(broker: tuple[str, int]) -> None:
    probes = healthy(broker)
    probes.last_poll = lambda: 0.0
    probes.started = time.monotonic() - 60
    assert probes.alive() == {"loop": probes.stalled()} and probes.stalled() is not None
    probes.stats.stored_at = time.monotonic()
    assert probes.stalled() is None


@pytest.mark.integration
def test_a_web_node_is_ready_only_with_redis_subscribed_and_kafka_reachable(
        redis_url: str, kafka_url: str, unique_prefix: str) -> None:
    from distributed.web_backend import StoreBackend
    from stream.pipeline import PipelineConfig

    host, port = closed_port()

    async def readiness(bus: str) -> tuple[bool, bool, bool, dict[str, str | None]]:
        backend = StoreBackend(redis_url, bus, unique_prefix, unique_prefix, PipelineConfig())
        tasks = [asyncio.create_task(backend.listen()),
                 asyncio.create_task(backend.watch_kafka(every_s=0.2))]
        try:
            await asyncio.sleep(2.0)  # subscribed to Redis, a few checks of Kafka
            checks = backend.ready()
            return (backend.listening, backend.kafka_reachable, not any(checks.values()),
                    checks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await backend.close()

    *flags, checks = asyncio.run(readiness(f"kafka://{host}:{port}"))
    assert flags == [True, False, False]
    assert checks["redis"] is None and f"{host}:{port}" in str(checks["kafka"])  # says why
    *flags, checks = asyncio.run(readiness(kafka_url))
    assert flags == [True, True, True] and checks == {"redis": None, "kafka": None}
