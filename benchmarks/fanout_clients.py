"""The client side of ``benchmarks/fanout.py``: one process holding its share of the
WebSockets, posting events and timing pushes, driven by commands on stdin (one JSON object a
line, each answered with one on stdout). Started by ``fanout.py``, not by hand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from collections import deque
from typing import Any

import websockets


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- client process ---------------------------------------------------------------------------

class Poster:
    """Keep-alive HTTP/1.1 connections, each request written at once (a general client writes
    headers and body apart, and on loopback meets delayed ACKs)."""

    def __init__(self, port: int, key: str, size: int) -> None:
        self.port, self.size = port, size
        self.head = ("POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                     f"\r\nAuthorization: Bearer {key}\r\nContent-Length: ")
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue())

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def post(self, body: bytes) -> int:
        reader, writer = await self.free.get()
        try:
            writer.write(f"{self.head}{len(body)}\r\n\r\n".encode() + body)
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("closed by the server")
            status = int(status_line.split()[1])
            length, close = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"connection" and b"close" in value.lower():
                    close = True
            await reader.readexactly(length)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.free.put_nowait((reader, writer))
            return 0
        if close:
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.free.put_nowait((reader, writer))
        return status

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait()[1].close()


class Clients:
    """One process's WebSockets, each watching one session and timing its pushes."""

    def __init__(self) -> None:
        self.port = 0
        self.sockets: dict[int, Any] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.version: dict[int, int] = {}
        """Per session, the version its next accepted event gives it."""
        self.pending: dict[int, deque[tuple[int, float]]] = {}
        """Per session, its posted events not yet seen pushed: (version, posted at)."""
        self.latencies: list[float] = []
        self.not_own = 0
        self.received = 0
        self.dropped = 0
        self.outstanding: set[int] = set()
        """Sessions of a burst whose pushes have not all arrived; ``all_pushed`` once none."""
        self.all_pushed = asyncio.Event()

    async def connect(self, port: int, sessions: list[int], tokens: list[str] | None,
                      concurrency: int) -> dict[str, Any]:

        self.port = port
        gate = asyncio.Semaphore(concurrency)
        errors: dict[str, int] = {}

        async def one(i: int, session: int) -> None:
            query = f"?token={tokens[i]}" if tokens else ""
            async with gate:
                try:
                    # Clients only read: no pings of their own, no compression offered.
                    ws = await websockets.connect(
                        f"ws://127.0.0.1:{port}/ws/sessions/{session}{query}",
                        ping_interval=None, compression=None, proxy=None, open_timeout=120,
                        close_timeout=30)
                    first = json.loads(await asyncio.wait_for(ws.recv(), 120))
                except Exception as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    return
            self.sockets[session] = ws
            self.version[session] = int(first["version"]) + 1
            self.pending[session] = deque()
            self.readers.append(asyncio.create_task(self.read(session, ws)))

        started = time.perf_counter()
        await asyncio.gather(*(one(i, s) for i, s in enumerate(sessions)))
        return {"connected": len(self.sockets), "errors": errors,
                "seconds": time.perf_counter() - started}

    async def read(self, session: int, ws: Any) -> None:
        pending = self.pending[session]
        try:
            async for message in ws:
                arrived = time.perf_counter()
                self.received += 1
                version = json.loads(message)["version"]
                while pending and pending[0][0] <= version:
                    sent_version, sent_at = pending.popleft()
                    if sent_version == version:
                        self.latencies.append((arrived - sent_at) * 1000)
                    else:  # its lists did not change, or its push coalesced with a later one
                        self.not_own += 1
                if session in self.outstanding and not pending:
                    self.outstanding.discard(session)
                    if not self.outstanding:
                        self.all_pushed.set()
        except Exception:
            pass
        if session in self.sockets:  # not closed by us
            self.dropped += 1

    def expect(self, session: int, sent_at: float) -> None:
        self.pending[session].append((self.version[session], sent_at))
        self.version[session] += 1

    def reject(self, session: int) -> None:
        """The last posted event was refused: it gives no version."""
        self.pending[session].pop()
        self.version[session] -= 1

    def take(self) -> dict[str, Any]:
        never = sum(len(p) for p in self.pending.values())
        for p in self.pending.values():
            p.clear()
        result = {"latencies": self.latencies, "not_own": self.not_own, "never": never,
                  "received": self.received, "dropped": self.dropped}
        self.latencies, self.not_own, self.received = [], 0, 0
        return result

    async def push(self, key: str, rate: float, seconds: float, items: int, pool: int,
                   seed: int) -> dict[str, Any]:
        """Post one click per request at ``rate``, round-robin over the open sessions."""
        poster = Poster(self.port, key, pool)
        await poster.open()
        rng = random.Random(seed)
        sessions = list(self.sockets)
        statuses: dict[int, int] = {}
        tasks: set[asyncio.Task[None]] = set()

        async def post(session: int, aid: int) -> None:
            self.expect(session, time.perf_counter())
            status = await poster.post(json.dumps(
                {"session": session, "aid": aid, "type": "clicks"}).encode())
            statuses[status] = statuses.get(status, 0) + 1
            if status != 202:
                self.reject(session)

        total = int(rate * seconds)
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(post(sessions[i % len(sessions)], rng.randrange(items)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        achieved = total / (time.perf_counter() - start)
        await asyncio.sleep(2.0)  # the last pushes
        poster.close()
        return {**self.take(), "posted": total, "achieved": achieved, "statuses": statuses}

    async def burst(self, key: str, size: int, items: int, seed: int) -> dict[str, Any]:
        """One POST with one event for each of ``size`` sessions; wait for their pushes."""
        poster = Poster(self.port, key, 1)
        await poster.open()
        rng = random.Random(seed)
        sessions = list(self.sockets)[:size]
        body = json.dumps([{"session": s, "aid": rng.randrange(items), "type": "clicks"}
                           for s in sessions]).encode()
        started = time.perf_counter()
        for session in sessions:
            self.expect(session, started)
        status = await poster.post(body)
        if status != 202:
            for session in sessions:
                self.reject(session)
        self.outstanding = {s for s in sessions if self.pending[s]}
        self.all_pushed.clear()
        if self.outstanding:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_pushed.wait(), 60)
        self.outstanding = set()
        poster.close()
        return {**self.take(), "status": status}

    async def probe_start(self) -> dict[str, Any]:
        self.probes: list[float] = []
        self.probing = asyncio.create_task(self.probe(self.probes))
        return {}

    async def probe_stop(self) -> dict[str, Any]:
        self.probing.cancel()
        return {"probes": self.probes}

    async def probe(self, times: list[float]) -> None:
        """``GET /healthz`` every 10 ms, timed: how long the server's loop keeps a request
        waiting while it fans out."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        try:
            while True:
                started = time.perf_counter()
                writer.write(request)
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                times.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.01)
        finally:
            writer.close()

    async def close(self, concurrency: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        sockets, self.sockets = self.sockets, {}

        async def one(ws: Any) -> None:
            async with gate:
                try:
                    await ws.close()
                except Exception:
                    pass

        started = time.perf_counter()
        await asyncio.gather(*(one(ws) for ws in sockets.values()))
        for task in self.readers:
            task.cancel()
        return {"closed": len(sockets), "seconds": time.perf_counter() - started}


async def client_main() -> None:
    """Commands on stdin, one JSON object a line; each answered with one on stdout."""
    clients = Clients()
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "connect":
            reply = await clients.connect(**command)
        elif name == "push":
            reply = await clients.push(**command)
        elif name == "burst":
            reply = await clients.burst(**command)
        elif name == "probe_start":
            reply = await clients.probe_start()
        elif name == "probe_stop":
            reply = await clients.probe_stop()
        elif name == "close":
            reply = await clients.close(**command)
        else:
            reply = {"error": f"unknown command {name}"}
        print(json.dumps({**reply, "dropped": clients.dropped}), flush=True)


if __name__ == "__main__":
    raise_fd_limit()
    from liverec import eventloop

    eventloop.run(client_main(), "auto")
