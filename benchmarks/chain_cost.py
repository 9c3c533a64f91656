"""CPU per event of the whole chain, per process, at fixed event rates.

    python benchmarks/chain_cost.py [--rates 300,1000,3000] [--seconds 20] [--batch 50]
                                    [--sessions 2000] [--watched 200] [--workers 1]
                                    [--no-embedded] [--rerank]

A wall-clock latency on a machine whose few cores five processes share measures the machine;
the CPU each process spends per event does not drift with the load beside it. So this starts
the distributed runtime (``--workers`` ``liverec worker`` and one ``liverec web`` node on the
local Kafka and Redis of ``deploy/local/services.sh up``), warms it with replayed sessions, and
then, per rate:

* posts events to ``POST /events`` in batches of ``--batch``, as a shop's backend would
  (a service key; the events are the warm sessions' paths through the catalog, dealt out to
  ``--sessions`` sessions), for ``--seconds``;
* keeps ``--watched`` of those sessions watched over WebSockets, as open product pages are,
  so that their lists are computed, announced and pushed;
* waits until the store has applied every event, and reads each process's CPU time from
  ``/proc`` over that whole window (Linux): worker(s), web node, Redis, Kafka, and this
  client (the load, reported apart).

It prints µs of CPU per event per process and their sum, the chain, and the push latency a
watching client sees: from the POST that carries an event of a watched session to the first
push whose version includes it, p50 and p99 over every such event. Then the embedded runtime
(``liverec demo``, one process) takes the same batches, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import websockets
from bench_distributed import (
    CpuShares,
    add_service_args,
    drop_state,
    list_delays,
    local_pids,
    show_logs,
    stop_processes,
    worker_phases,
)
from push_latency import (
    BASE_SESSION,
    RawHttpPool,
    played_sessions,
    start_distributed,
    start_embedded,
    warm_sessions,
)

from distributed.store import RedisStore
from liverec import eventloop
from stream.events import TYPE_NAMES

# The servers take the benchmark's posts as a shop backend's, past a shopper's rate limits.
os.environ.update({"LIVEREC_POST_RATE": "1e9", "LIVEREC_POST_BURST": "1000000000"})


class Waits:
    """Per watched session, the events posted and not yet in a push: (version, posted at)."""

    def __init__(self) -> None:
        self.version: dict[int, int] = {}
        self.waiting: dict[int, deque[tuple[int, float]]] = {}
        self.seconds: list[float] = []

    def posted(self, session: int, at: float) -> None:
        if session in self.version:
            self.version[session] += 1
            self.waiting[session].append((self.version[session], at))

    def pushed(self, session: int, version: int) -> None:
        waiting, now = self.waiting.get(session), time.perf_counter()
        while waiting and waiting[0][0] <= version:
            self.seconds.append(now - waiting.popleft()[1])

    def percentiles(self) -> str:
        values = sorted(self.seconds)
        if not values:
            return "no pushes timed"
        pick = [values[min(len(values) - 1, int(q * len(values)))] * 1000 for q in (0.5, 0.99)]
        return f"push p50 {pick[0]:,.0f} ms, p99 {pick[1]:,.0f} ms over {len(values):,} events"


async def watch(ws_base: str, sessions: list[int], pushes: list[int], waits: Waits,
                ready: asyncio.Event) -> None:
    """Hold a WebSocket per session open, count the pushes and time them."""
    opened = 0

    async def one(session: int) -> None:
        nonlocal opened
        async with websockets.connect(f"{ws_base}/ws/sessions/{session}") as ws:
            waits.version[session] = json.loads(await ws.recv())["version"]
            waits.waiting[session] = deque()
            opened += 1
            if opened == len(sessions):
                ready.set()
            async for message in ws:
                pushes[0] += 1
                waits.pushed(session, json.loads(message)["version"])

    await asyncio.gather(*(one(s) for s in sessions))


async def drive(port: int, rate: float, seconds: float, batch: int, sessions: int,
                watched: int, offset: int, event_of: Any, cpu: CpuShares,
                applied: Any) -> dict[str, Any]:
    """Post ``rate × seconds`` events in batches with ``watched`` sessions watched; CPU is
    sampled from the first post until ``applied()`` reaches the events sent."""
    pushes = [0]
    waits = Waits()
    ready = asyncio.Event()
    watchers = asyncio.create_task(watch(f"ws://127.0.0.1:{port}",
                                         [BASE_SESSION + i for i in range(watched)], pushes,
                                         waits, ready))
    if watched:
        await asyncio.wait_for(ready.wait(), 60)
    total = int(rate * seconds) // batch * batch
    before = await applied()
    # A shop backend's few keep-alive connections, each request in one write (push_latency's
    # pool): a general client would spend more CPU on a small POST than the web node does.
    client = RawHttpPool("127.0.0.1", port, 8)
    await client.open()
    try:
        sent_pushes = pushes[0]
        start = time.perf_counter()
        cpu.start()
        posts: list[asyncio.Task[None]] = []

        async def post(first: int) -> None:
            body = []
            at = time.perf_counter()
            for i in range(first, first + batch):
                aid, etype = event_of(offset + i)
                session = BASE_SESSION + (offset + i) % sessions
                body.append({"session": session, "aid": aid, "type": TYPE_NAMES[etype]})
                waits.posted(session, at)
            status = await client.post_json("/events", body)
            if status != 202:
                raise RuntimeError(f"POST /events answered {status}")

        for first in range(0, total, batch):
            delay = start + first / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(post(first)))
        await asyncio.gather(*posts)
        sending = time.perf_counter() - start
        deadline = time.monotonic() + 120
        while await applied() < before + total:
            if time.monotonic() > deadline:
                raise RuntimeError("the events were not all applied within 2 minutes")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the last lists: announced and pushed
        cpu.stop()
        async with httpx.AsyncClient() as http:  # the server's own share of the wait
            server = (await http.get(f"http://127.0.0.1:{port}/stats")).json()["latency_ms"]
    finally:
        await client.close()
    watchers.cancel()
    return {"events": total, "achieved": total / sending, "pushes": pushes[0] - sent_pushes,
            "latency": f"{waits.percentiles()} (the server's own, recent: p50 "
                       f"{server['p50']} ms, p99 {server['p99']} ms)"}


def idle(pids: dict[str, int], seconds: float = 5.0) -> str:
    """Cores each process uses with no events: what it costs to be there."""
    cpu = CpuShares(pids)
    cpu.start()
    time.sleep(seconds)
    cpu.stop()
    return cpu.report()


def per_event(cpu: CpuShares, events: int) -> dict[str, float]:
    """µs of CPU per event per process over the sampled window."""
    assert cpu.begun is not None and cpu.ended is not None
    (_, _, u0), (_, _, u1) = cpu.begun, cpu.ended
    return {name: (u1[name] - u0[name]) / cpu.ticks / events * 1e6
            for name in cpu.pids if name in u0 and name in u1}


def show(label: str, rate: float, result: dict[str, Any], costs: dict[str, float]) -> None:
    load = costs.pop("this client", 0.0)
    chain = sum(costs.values())
    parts = "  ".join(f"{name} {us:,.0f}" for name, us in costs.items())
    print(f"{label} at {rate:,.0f} events/s (achieved {result['achieved']:,.0f}; "
          f"{result['events']:,} events, {result['pushes']:,} pushes): chain "
          f"{chain:,.0f} µs CPU per event = {parts}  [load generator {load:,.0f}]; "
          f"{result['latency']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="300,1000,3000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=50, help="events per POST")
    parser.add_argument("--sessions", type=int, default=2000,
                        help="sessions the events are dealt out to")
    parser.add_argument("--watched", type=int, default=200,
                        help="of those, sessions watched over a WebSocket")
    parser.add_argument("--warm-sessions", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--metrics-port", type=int, default=9299)
    parser.add_argument("--rerank", action="store_true",
                        help="the River re-rankers (the runtime's default); without, the recipe")
    parser.add_argument("--no-embedded", action="store_true",
                        help="skip the embedded runtime's run")
    add_service_args(parser)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    print(f"chain cost: batches of {args.batch} events, {args.sessions:,} sessions of which "
          f"{args.watched:,} watched, {args.seconds:g} s per rate, "
          f"{'re-rankers' if args.rerank else 'recipe'}; {os.cpu_count()} cpus", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        event_of = played_sessions(warm_sessions(args, Path(workdir)), args.sessions)
        prefix = f"chain-{uuid.uuid4().hex[:8]}-"
        procs: list[subprocess.Popen[bytes]] = []
        try:
            start_distributed(args, Path(workdir), prefix, procs)
            store = RedisStore.from_url(args.redis, prefix)

            async def applied() -> int:
                return store.events()

            pids = {f"worker {i}": p.pid for i, p in enumerate(procs[:-1])}
            pids |= {"web node": procs[-1].pid, **local_pids(args.redis),
                     "this client": os.getpid()}
            print(f"distributed, idle: {idle(pids)}", flush=True)
            offset = 0
            for rate in rates:
                cpu = CpuShares(pids)
                result = eventloop.run(drive(args.port, rate, args.seconds, args.batch,
                                             args.sessions, args.watched, offset, event_of,
                                             cpu, applied), "auto")
                offset += result["events"]
                show("distributed", rate, result, per_event(cpu, result["events"]))
                print(f"  worker seconds per phase so far: "
                      f"{[worker_phases(args.metrics_port + i) for i in range(args.workers)]}"
                      f"; event in Kafka to lists announced, so far: "
                      f"{[list_delays(args.metrics_port + i) for i in range(args.workers)]}",
                      flush=True)
        except Exception:
            show_logs(sorted(Path(workdir).glob("*.log")))
            raise
        finally:
            stop_processes(procs)
            drop_state(args.redis, prefix, args.kafka)
        if args.no_embedded:
            return
        procs = []
        try:
            start_embedded(args, Path(workdir), procs)

            async def posted() -> int:
                async with httpx.AsyncClient() as client:
                    stats = (await client.get(f"http://127.0.0.1:{args.port}/stats")).json()
                return int(stats["events"])

            offset = 0
            for rate in rates:
                cpu = CpuShares({"embedded": procs[0].pid, "this client": os.getpid()})
                result = eventloop.run(drive(args.port, rate, args.seconds, args.batch,
                                             args.sessions, args.watched, offset, event_of,
                                             cpu, posted), "auto")
                offset += result["events"]
                show("embedded", rate, result, per_event(cpu, result["events"]))
        except Exception:
            show_logs(sorted(Path(workdir).glob("*.log")))
            raise
        finally:
            stop_processes(procs)


if __name__ == "__main__":
    main()
