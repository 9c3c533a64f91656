"""Event → WebSocket push latency, with real clients, at a fixed event rate.

    python benchmarks/push_latency.py [--rate 1000] [--seconds 20] [--sessions 200] [--rerank]
                                      [--events new-items|sessions]
    python benchmarks/push_latency.py --distributed [--workers N] [--kafka …] [--redis …]

Embedded (default): starts ``liverec demo`` in its own process (synthetic sessions replayed at
max speed, so the state is warm) and waits for the replay to finish; it serves the
co-visitation recipe unless ``--rerank`` asks for the River re-rankers (the demo's default),
whose lists cost about three times as much to compute. Distributed: starts
``--workers`` ``liverec worker`` processes and one ``liverec web`` node on the local Kafka and
Redis (``deploy/local/services.sh up``), replays the same synthetic sessions into Kafka and
waits until the workers have applied them; every measured event then goes POST → web node → Kafka →
worker → Redis → lists channel → web node → WebSocket. Then, from this process:

* opens one WebSocket per watched session (``--sessions``),
* posts events with ``POST /events`` at ``--rate`` events/s, round-robin over those sessions
  (``--intake kafka``, distributed only: publishes them to the events topic itself, as a
  shop's backend would, with the web node's producer settings; the web node then only
  pushes). ``--events new-items`` (default): each a click on an item never seen, so the
  session's lists must change; the worst case, since every click pairs afresh with a full
  window of items. ``--events sessions``: the warm sessions' events dealt out round-robin, each
  watched session playing its share in order: a shop's mix of items, repeats, carts and
  orders. A web node pushes only lists that changed, so there only events whose own version
  is pushed are timed (the others are counted: their lists did not change, or their push
  coalesced with a later event's, which under overload hides some of the tail),
* times each event from just before its POST (or send) to the arrival of the first push that
  reflects it: the push of its version, or of a later one when the pushes coalesced (a slow
  consumer of lists skips versions; the event then waited for the later push).

Every session gets an event every ``sessions / rate`` seconds. Prints the median, p90, p99 and
max latency in ms over every event sent, how many events no push reflected before the end
("never pushed"), how many pushes coalesced several events, how long the POSTs took to be
answered (distributed: until Kafka acknowledged the event), the mean latency per tenth of the
run (when a backlog built and drained), the cores each process used while the events were sent
(the web node's or demo's, the workers', Kafka's and Redis's where they run here, this
client's) and how busy the machine was, and, distributed, each worker's own share: its
``liverec_list_delay_seconds``, from the event's arrival in Kafka to its lists announced, and
how many times Redis rewrote its append-only file meanwhile (each rewrite a fork writing the
whole dataset, on the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import websockets
from bench_distributed import (
    CpuShares,
    add_service_args,
    aof_rewrites,
    drop_state,
    list_delays,
    local_pids,
    show_logs,
    stop_processes,
    worker_phases,
)

from distributed.kafka_bus import KafkaBus
from liverec import eventloop
from stream.events import CLICKS, TYPE_CODES, TYPE_NAMES, Event

BASE_SESSION = 7_000_000_000


#: The service key the benchmark's servers take: it posts as a shop's backend would, for many
#: sessions and past a shopper's rate limits.
INGEST_KEY = secrets.token_urlsafe(16)


class RawHttpPool:
    """Keep-alive HTTP/1.1 connections that send each request in one write.

    A general client (httpx) writes headers and body separately; on loopback that meets
    delayed ACKs and adds ~40 ms per request, which would measure the client, not liverec.
    """

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue())

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def post_json(self, path: str, body: object) -> int:
        payload = orjson.dumps(body)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json"
                f"\r\nAuthorization: Bearer {INGEST_KEY}"
                f"\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
        reader, writer = await self.free.get()
        try:
            writer.write(head + payload)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            return status
        finally:
            self.free.put_nowait((reader, writer))

    async def close(self) -> None:
        while not self.free.empty():
            _, writer = self.free.get_nowait()
            writer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_ready(base: str, procs: list[subprocess.Popen[bytes]],
                     events: int | None = None) -> None:
    """Until the demo's replay finished, or (distributed) ``events`` were applied."""
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while True:
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError("a server process exited")
            try:
                stats = (await client.get("/stats")).json()
                if events is None and stats.get("replay", {}).get("state") == "finished":
                    return
                if events is not None and stats.get("events") == events:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)


def new_items() -> Callable[[int], tuple[int, int]]:
    """The ``i``-th event's (aid, type): a click on an item never seen."""
    return lambda i: (10_000_000 + i, CLICKS)


def played_sessions(path: Path, n: int) -> Callable[[int], tuple[int, int]]:
    """The ``i``-th event's (aid, type), for watched session ``i % n``: the generated sessions
    of ``path`` dealt out round-robin, each watched session playing its share in order."""
    queues: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    with path.open("rb") as lines:
        for k, line in enumerate(lines):
            queues[k % n] += [(e["aid"], TYPE_CODES[e["type"]])
                              for e in orjson.loads(line)["events"]]
    if not all(queues):
        raise ValueError(f"{path}: fewer generated sessions than watched ones")

    def event(i: int) -> tuple[int, int]:
        queue = queues[i % n]
        return queue[(i // n) % len(queue)]

    return event


async def measure(port: int, ws_base: str, rate: float, seconds: float, n: int,
                  kafka: KafkaBus | None = None,
                  event_of: Callable[[int], tuple[int, int]] | None = None,
                  cpu: CpuShares | None = None) -> dict:
    """``event_of(i)``: the ``i``-th event's (aid, type) (default: :func:`new_items`, whose
    every event changes its session's lists). With another ``event_of``, an event whose lists
    did not change gets no push of its own (a web node pushes changes only), and a later
    event's push would time it at that event's distance: only events whose own version is
    pushed are timed, the others counted as ``untimed``."""
    own_pushes_only = event_of is not None
    event_of = event_of or new_items()
    untimed = 0
    # Per session, its events not yet reflected by a push: (version, sent at), in order.
    sent: dict[int, deque[tuple[int, float]]] = {BASE_SESSION + i: deque() for i in range(n)}
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (sent at, latency) of each timed event
    coalesced = 0  # pushes that reflected more than one event
    answers: list[float] = []  # POST → 202 (distributed: once Kafka acknowledged the event)
    versions = {BASE_SESSION + i: 0 for i in range(n)}

    async def listen(session: int, ready: asyncio.Event) -> None:
        nonlocal coalesced, untimed
        waiting = sent[session]
        async with websockets.connect(f"{ws_base}/ws/sessions/{session}") as ws:
            first = orjson.loads(await ws.recv())
            versions[session] = first["version"]
            ready.set()
            async for message in ws:
                arrived = time.perf_counter()
                version = orjson.loads(message)["version"]
                reflected = 0
                while waiting and waiting[0][0] <= version:
                    sent_version, sent_at = waiting.popleft()
                    if sent_version == version or not own_pushes_only:
                        latencies.append((arrived - sent_at) * 1000)
                        timeline.append((sent_at, latencies[-1]))
                    else:
                        untimed += 1
                    reflected += 1
                coalesced += reflected > 1

    readies = [asyncio.Event() for _ in range(n)]
    listeners = [asyncio.create_task(listen(BASE_SESSION + i, readies[i])) for i in range(n)]
    await asyncio.gather(*(r.wait() for r in readies))
    total = int(rate * seconds)
    # One keep-alive connection per watched session, as each shopper's browser has its own:
    # a smaller pool would queue the posts in this client, and make one produce request to
    # Kafka carry at most as many events as the pool has connections.
    pool = RawHttpPool("127.0.0.1", port, n)
    await pool.open()
    if kafka is not None:
        await kafka.publish([])  # connects its producer before the clock starts
    # The measuring client must not pause itself: its own garbage collections would show up
    # as push latency. The run is bounded, so its garbage is too.
    gc.collect()
    gc.disable()
    start = time.perf_counter()
    if cpu is not None:
        cpu.start()
    posts: set[asyncio.Task[None]] = set()

    async def post(session: int, aid: int, etype: int) -> None:
        versions[session] += 1
        started = time.perf_counter()
        sent[session].append((versions[session], started))
        if kafka is not None:
            await kafka.publish([Event(session, aid, int(time.time() * 1000), etype)])
            answers.append((time.perf_counter() - started) * 1000)
            return
        status = await pool.post_json("/events", {"session": session, "aid": aid,
                                                  "type": TYPE_NAMES[etype]})
        answers.append((time.perf_counter() - started) * 1000)
        if status != 202:
            raise RuntimeError(f"POST /events answered {status}")

    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        session = BASE_SESSION + i % n
        task = asyncio.create_task(post(session, *event_of(i)))
        posts.add(task)
        task.add_done_callback(posts.discard)
    await asyncio.gather(*posts)
    if cpu is not None:
        cpu.stop()
    achieved = total / (time.perf_counter() - start)
    gc.enable()
    await pool.close()
    await asyncio.sleep(1.0)
    for task in listeners:
        task.cancel()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        server_side = (await client.get("/stats")).json().get("latency_ms")
    if kafka is not None:
        await kafka.close()
    return {"events": total, "achieved_rate": achieved, "latencies": latencies,
            "timeline": [(at - start, ms) for at, ms in timeline],
            "answers": answers, "missed": sum(len(w) for w in sent.values()),
            "coalesced": coalesced, "untimed": untimed, "server": server_side}


def over_time(timeline: list[tuple[float, float]], parts: int = 10) -> str:
    """Mean latency (ms) per tenth of the sending time: a backlog shows as a hump (state
    warming, a stall) or a rise that never drains (the rate is past what the worker takes)."""
    span = max(at for at, _ in timeline) / parts or 1.0
    sums, counts = [0.0] * parts, [0] * parts
    for at, ms in timeline:
        part = min(parts - 1, int(at / span))
        sums[part] += ms
        counts[part] += 1
    return " ".join(f"{span * i:.1f}s:{sums[i] / counts[i]:.0f}" if counts[i] else
                    f"{span * i:.1f}s:-" for i in range(parts))


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``liverec ARGS`` in the background, its output in ``log`` (shown if the run fails)."""
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "liverec", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def warm_sessions(args: argparse.Namespace, workdir: Path) -> Path:
    """The generated sessions that warm the state (the demo generates the same ones)."""
    warm = workdir / "warm.jsonl"
    if not warm.exists():
        subprocess.run([sys.executable, "-m", "liverec", "generate", "--sessions",
                        str(args.warm_sessions), "--items", "20000", "--out", str(warm)],
                       check=True, stdout=subprocess.DEVNULL)
    return warm


def start_embedded(args: argparse.Namespace, workdir: Path,
                   procs: list[subprocess.Popen[bytes]]) -> None:
    """The demo, warm; ``procs`` gets the process at once, so a failure still stops it."""
    procs.append(spawn(["demo", "--port", str(args.port), "--speed", "max", "--sessions",
                        str(args.warm_sessions), "--items", "20000"],
                       {**os.environ, "LIVEREC_RERANK": "true" if args.rerank else "false",
                        "LIVEREC_INGEST_KEY": INGEST_KEY},
                       workdir / "demo.log"))
    asyncio.run(wait_ready(f"http://127.0.0.1:{args.port}", procs))


def start_distributed(args: argparse.Namespace, workdir: Path, prefix: str,
                      procs: list[subprocess.Popen[bytes]]) -> None:
    """A worker and a web node, warm; ``procs`` gets them at once."""
    env = {**os.environ, "LIVEREC_BUS": args.kafka, "LIVEREC_STORE": args.redis,
           "LIVEREC_TOPIC_PREFIX": prefix, "LIVEREC_APP_ID": prefix.rstrip("-"),
           "LIVEREC_PARTITIONS": "4", "LIVEREC_RERANK": "true" if args.rerank else "false",
           "LIVEREC_INGEST_KEY": INGEST_KEY}
    warm = warm_sessions(args, workdir)
    procs += [spawn(["worker"], {**env, "LIVEREC_METRICS_PORT": str(args.metrics_port + i)},
                    workdir / f"worker-{i}.log") for i in range(args.workers)]
    procs.append(spawn(["web", "--port", str(args.port)], env, workdir / "web.log"))
    replay = subprocess.run([sys.executable, "-m", "liverec", "replay", str(warm), "--to",
                             args.kafka, "--quiet"], check=True, capture_output=True, text=True,
                            env=env)
    total = int(replay.stdout.split("published ")[1].split(" events")[0].replace(",", ""))
    asyncio.run(wait_ready(f"http://127.0.0.1:{args.port}", procs, events=total))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--warm-sessions", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=1, help="workers (distributed)")
    parser.add_argument("--metrics-port", type=int, default=9199,
                        help="the first worker's /metrics (distributed; the next ones follow)")
    parser.add_argument("--rerank", action="store_true",
                        help="serve the River re-rankers' lists (the runtime's default); "
                        "without it, the recipe")
    parser.add_argument("--distributed", action="store_true",
                        help="through a worker and a web node on Kafka and Redis")
    parser.add_argument("--events", choices=("new-items", "sessions"), default="new-items",
                        help="what the measured events are: clicks on items never seen (the "
                        "worst case), or generated sessions played on the warm catalog")
    parser.add_argument("--intake", choices=("http", "kafka"), default="http",
                        help="how measured events enter (distributed): POST /events to the "
                        "web node, or straight to the events topic")
    add_service_args(parser)
    args = parser.parse_args()
    if args.intake == "kafka" and not args.distributed:
        parser.error("--intake kafka needs --distributed")
    ws_base = f"ws://127.0.0.1:{args.port}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    with tempfile.TemporaryDirectory() as workdir:
        procs: list[subprocess.Popen[bytes]] = []
        try:
            if args.distributed:
                start_distributed(args, Path(workdir), prefix, procs)
            else:
                start_embedded(args, Path(workdir), procs)
            # The measuring client shares the machine's cores with what it measures: on uvloop
            # (like the web node) it takes less of them.
            kafka = (KafkaBus(args.kafka, topic=f"{prefix}events", partitions=4)
                     if args.intake == "kafka" else None)
            event_of = None
            if args.events == "sessions":  # the warm sessions' paths through the catalog
                event_of = played_sessions(warm_sessions(args, Path(workdir)), args.sessions)
            rewrites = aof_rewrites(args.redis) if args.distributed else None
            if args.distributed:
                pids = {f"worker {i}": proc.pid for i, proc in enumerate(procs[:-1])}
                pids |= {"web node": procs[-1].pid, **local_pids(args.redis)}
            else:
                pids = {"demo": procs[0].pid}
            cpu = CpuShares({**pids, "this client": os.getpid()})
            result = eventloop.run(measure(args.port, ws_base, args.rate, args.seconds,
                                           args.sessions, kafka, event_of, cpu), "auto")
            if args.distributed:
                after = aof_rewrites(args.redis)
                result["rewrites"] = (None if rewrites is None or after is None
                                      else after - rewrites)
                result["phases"] = [worker_phases(args.metrics_port + i)
                                    for i in range(args.workers)]
                result["delays"] = [list_delays(args.metrics_port + i)
                                    for i in range(args.workers)]
        except Exception:
            show_logs(sorted(Path(workdir).glob("*.log")))
            raise
        finally:
            stop_processes(procs)
            if args.distributed:
                drop_state(args.redis, prefix, args.kafka)
    lat = result["latencies"]
    path = ("POST -> web node -> Kafka -> worker -> Redis -> web node" if args.distributed
            else "POST -> embedded pipeline")
    if args.intake == "kafka":
        path = "Kafka -> worker -> Redis -> web node"
    what = ("clicks on new items" if args.events == "new-items"
            else "generated sessions' events")
    print(f"event -> WebSocket push latency ({path}), {result['events']:,} events ({what}) at "
          f"{result['achieved_rate']:,.0f} events/s over {args.sessions} sessions "
          f"(warm state: {args.warm_sessions:,} replayed sessions; cpus {os.cpu_count()})")
    server = result["server"] or {}
    # The embedded hub times its pushes from the batch's start; a web node cannot (the
    # batch ran in a worker), and reports none.
    inside = (f"; server side (batch start to send, last 2,048 pushes): {server}"
              if any(v is not None for v in server.values()) else "")
    untimed = (f"; untimed (their lists unchanged, or pushed with a later event's) "
               f"{result['untimed']:,}" if args.events == "sessions" else "")
    print(f"  events timed {len(lat):,}{untimed}, never pushed {result['missed']:,}; "
          f"pushes that reflected several events {result['coalesced']:,}{inside}")
    answers = result["answers"]
    if answers:
        what = "sent (Kafka acknowledged)" if args.intake == "kafka" else "POST answered (202)"
        print(f"  {what}: p50 {statistics.median(answers):.2f} ms   "
              f"p99 {percentile(answers, 0.99):.2f} ms")
    print(f"  CPU while events were sent: {cpu.report()}")
    if "phases" in result:
        for phases in result["phases"]:
            print(f"  worker seconds per phase, warm-up included: {phases}")
        for delays in result["delays"]:
            print(f"  worker's lists after the event reached Kafka: {delays}")
        if result["rewrites"] is not None:
            print(f"  Redis rewrote its append-only file {result['rewrites']} time(s) "
                  "while events were measured")
    if lat:
        print(f"  mean latency by when the event was sent: {over_time(result['timeline'])}")
        print(f"  p50 {statistics.median(lat):.2f} ms   p90 {percentile(lat, 0.9):.2f} ms   "
              f"p99 {percentile(lat, 0.99):.2f} ms   max {max(lat):.2f} ms")


if __name__ == "__main__":
    main()
