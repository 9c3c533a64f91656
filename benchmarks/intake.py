"""The web app's cost per ``POST /events``, without sockets: CPU per request through the app's
ASGI entry (checks, parsing, the bus), as a shop's backend posts one event at a time.

    python benchmarks/intake.py --requests 20000

On a busy machine count instructions instead, which do not drift: run it twice under
callgrind with different ``--requests`` and divide the difference of the totals by the
difference of the requests (docs/benchmarks.md). Runs against any build: the settings it needs
come from the environment, which older builds ignore.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

# Before liverec is imported: its settings read the environment once.
os.environ.update({"LIVEREC_INGEST_KEY": "bench", "LIVEREC_SECRET": "bench",
                   "LIVEREC_POST_RATE": "1e9", "LIVEREC_POST_BURST": "1000000000"})

from liverec.runtime import EmbeddedRuntime  # noqa: E402
from liverec.settings import Settings  # noqa: E402


async def run(requests: int, warm: int) -> float:
    """CPU seconds per request after ``warm`` requests."""
    app = EmbeddedRuntime(Settings()).app

    async def post(i: int) -> None:
        body = b'{"session": %d, "aid": %d, "type": "clicks"}' % (i % 500, i % 9000)
        scope = {"type": "http", "method": "POST", "path": "/events", "root_path": "",
                 "headers": [(b"content-type", b"application/json"),
                             (b"authorization", b"Bearer bench"),
                             (b"content-length", str(len(body)).encode())],
                 "client": ("10.0.0.1", 1234), "query_string": b"", "http_version": "1.1",
                 "scheme": "http", "server": ("127.0.0.1", 8000)}
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)  # type: ignore[arg-type]
        if status != [202]:
            raise RuntimeError(f"POST /events answered {status}")

    for i in range(warm):
        await post(i)
    started = time.process_time()
    for i in range(requests):
        await post(i)
    return (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warm", type=int, default=2_000)
    args = parser.parse_args()
    cpu = asyncio.run(run(args.requests, args.warm))
    print(f"{args.requests:,} requests: {cpu * 1e6:.1f} µs CPU per POST /events")


if __name__ == "__main__":
    main()
