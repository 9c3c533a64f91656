"""A worker's HTTP endpoint (``/healthz``, ``/readyz``, ``/metrics``:
:mod:`distributed.health`), on a port that several workers on one host can share the defaults
of."""

from __future__ import annotations

import errno
from typing import Any

#: The first port a worker tries when ``LIVEREC_METRICS_PORT`` is unset.
DEFAULT_PORT = 9108
#: How many ports after it a worker on a busy host tries before giving up.
PORTS_TO_TRY = 100


def serve_metrics(registry: Any, host: str, port: int | None, probes: Any = None) -> int:
    """Serve ``registry`` and the worker's ``probes`` (:class:`~distributed.health.Probes`)
    on ``host``; return the port bound.

    ``port`` None: :data:`DEFAULT_PORT`, or the next free one (the second worker on a host
    takes 9109); 0: any free port; else exactly that port, which an operator chose for a
    scrape configuration, so a busy one is an error rather than a surprise.
    """
    from prometheus_client import generate_latest

    from distributed.health import serve_health

    candidates = (range(DEFAULT_PORT, DEFAULT_PORT + PORTS_TO_TRY) if port is None
                  else [port])
    for candidate in candidates:
        try:
            server = serve_health(probes, lambda: generate_latest(registry), host, candidate)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and port is None:
                continue
            raise OSError(f"metrics port {candidate}: {exc.strerror}; leave "
                          "LIVEREC_METRICS_PORT unset (the next free port from 9108) or set "
                          "0 (any free port)") from None
        return int(server.server_address[1])
    raise OSError(f"metrics: ports {DEFAULT_PORT}-{DEFAULT_PORT + PORTS_TO_TRY - 1} are all "
                  "in use; set LIVEREC_METRICS_PORT (0 = any free port)")
