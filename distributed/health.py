"""A worker's answers to "is it alive?" and "may it take traffic?", and the HTTP server that
gives them with its metrics.

* ``/healthz`` (liveness) fails once the worker has neither polled Kafka nor stored a batch
  for ``stall_s``: its loop is stuck, and only a restart helps (a worker waiting out a Redis
  outage stops polling too, and restarting it then is what it does itself after
  ``LIVEREC_REDIS_PATIENCE_S``).
* ``/readyz`` (readiness) needs partitions assigned, Kafka and Redis reachable now, and the
  consumer lag under ``max_lag``: a worker catching up after a restart is alive, not ready.
* ``/metrics``: Prometheus. Any other path: 404.

Each answer is JSON naming every check and, for a failed one, why.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from distributed.worker_stats import WorkerStats
from stream.wire import bootstrap_of

#: A check: None when it passes, else why not.
Check = Callable[[], "str | None"]


@dataclass
class Probes:
    """The checks behind ``/healthz`` and ``/readyz``."""

    stats: WorkerStats
    last_poll: Callable[[], float]
    """When the consumer last polled Kafka (monotonic seconds; 0: never)."""
    ping_redis: Callable[[], object]
    """Raises when Redis does not answer."""
    brokers: list[tuple[str, int]]
    stall_s: float = 60.0
    max_lag: int = 10_000
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()

    def stalled(self) -> str | None:
        now = time.monotonic()
        last = max(self.last_poll(), self.stats.stored_at, self.started)
        if now - last > self.stall_s:
            return (f"no poll of Kafka and no batch stored for {now - last:.0f} s "
                    f"(limit {self.stall_s:g} s)")
        return None

    def assigned(self) -> str | None:
        return None if self.stats.assigned else "no partitions assigned (yet)"

    def redis(self) -> str | None:
        try:
            self.ping_redis()
        except Exception as exc:
            return f"Redis: {exc}"
        return None

    def kafka(self) -> str | None:
        return kafka_unreachable(self.brokers)

    def lag(self) -> str | None:
        behind = sum(self.stats.lag.values())
        if behind > self.max_lag:
            return f"{behind:,} events behind (limit {self.max_lag:,})"
        return None

    def alive(self) -> dict[str, str | None]:
        return {"loop": self.stalled()}

    def ready(self) -> dict[str, str | None]:
        return {"loop": self.stalled(), "partitions": self.assigned(), "kafka": self.kafka(),
                "redis": self.redis(), "lag": self.lag()}


def kafka_unreachable(brokers: list[tuple[str, int]]) -> str | None:
    """None when a broker takes a TCP connection within a second, else why none did."""
    errors = []
    for host, port in brokers:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return None
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    return "Kafka: " + "; ".join(errors)


def brokers_of(url: str) -> list[tuple[str, int]]:
    """``kafka://host:port[,host:port]`` as (host, port) pairs."""
    pairs = []
    for address in bootstrap_of(url).split(","):
        host, _, port = address.rpartition(":")
        pairs.append((host.strip("[]") or "127.0.0.1", int(port or 9092)))
    return pairs


def answer(checks: dict[str, str | None]) -> tuple[int, bytes]:
    """Status and JSON body: 200 when every check passed, else 503, each check named."""
    ok = all(reason is None for reason in checks.values())
    body = {"status": "ok" if ok else "failing",
            "checks": {name: reason or "ok" for name, reason in checks.items()}}
    return (200 if ok else 503), json.dumps(body).encode()


def serve_health(probes: Probes | None, metrics: Callable[[], bytes], host: str,
                 port: int) -> ThreadingHTTPServer:
    """Serve ``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` from a thread of its
    own, so that a stalled event loop is seen, not shared (no ``probes``: ``/metrics``
    only); raises OSError if the port is taken."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self.reply(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz" and probes is not None:
                self.reply(*answer(probes.alive()), "application/json")
            elif path == "/readyz" and probes is not None:
                self.reply(*answer(probes.ready()), "application/json")
            else:
                self.reply(404, b'{"detail": "not found: /healthz, /readyz or /metrics"}',
                           "application/json")

        def reply(self, status: int, body: bytes, media: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every few seconds would fill the log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
