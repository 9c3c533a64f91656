"""Several workers on one host start with the defaults: each finds a metrics port of its own."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from liverec.worker_metrics import DEFAULT_PORT, serve_metrics


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("liverec_test_total", "a counter", registry=reg).inc()
    return reg


def answers(port: int) -> bool:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    return b"liverec_test_total 1.0" in body


def test_workers_started_with_the_defaults_take_the_next_free_ports() -> None:
    ports = [serve_metrics(registry(), "127.0.0.1", None) for _ in range(3)]
    assert len(set(ports)) == 3
    assert all(DEFAULT_PORT <= p < DEFAULT_PORT + 100 for p in ports)
    assert all(answers(p) for p in ports)


def test_port_zero_takes_any_free_port() -> None:
    port = serve_metrics(registry(), "127.0.0.1", 0)
    assert port > 0 and answers(port)


def test_a_port_asked_for_and_busy_is_an_error_that_says_what_to_do() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"metrics port {port}: .*LIVEREC_METRICS_PORT"):
            serve_metrics(registry(), "127.0.0.1", port)
