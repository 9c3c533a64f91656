"""Fan-out: thousands of WebSocket clients on one web process.

    python benchmarks/fanout.py [--connections 10000] [--runtime demo|web|both] [--rate 500]
                                [--seconds 20] [--clients 2] [--burst 2000]
    python benchmarks/fanout.py --trace-memory --connections 2000 --runtime demo

Starts the web process of a runtime: ``demo`` (the embedded runtime, ``liverec demo --speed
max`` on generated sessions, waited for until its replay finished) or ``web`` (a ``liverec
web`` node and one ``liverec worker`` on the local Kafka and Redis, ``deploy/local/services.sh
up``, under a topic prefix of their own, warmed with the same generated sessions). Both get
``LIVEREC_SECRET`` and ``LIVEREC_INGEST_KEY`` and caps raised past the benchmark's load; the
file-descriptor limit is raised to its hard limit here, in the server and in the clients.

Then ``--clients`` client processes (asyncio, the ``websockets`` library) each open their share
of ``--connections`` WebSockets, one per watched session (``/ws/sessions/{id}?token=…``: a
shopper's private session, its token minted with the server's secret; ``--public``: public demo
sessions, no token), and only read. Measured, on the server's process (``/proc``):

* memory: VmRSS before the clients connect, after they all got their first push (and a few
  seconds for the server's collector), after the pushes, after they all closed, and after they
  all opened again (is what the first ones left reused?); the growth per connection;
* CPU (utime + stime) per 1,000 connections opened, and while the connections sit idle (the
  server pings each one every 20 s);
* pushes: each client process posts ``POST /events`` (the ingest key as Bearer) for its own
  sessions at its share of ``--rate`` events/s for ``--seconds``, one click on a catalog item
  per request; each event is timed from just before its POST to the arrival of the push with
  its version (client side), and the server's CPU per 1,000 pushes is its CPU over the phase
  divided by the pushes it counted (``/stats``), POST handling and list computation included
  (also less the idle rate); ``web``: the worker's CPU too, and its event → lists delay;
* a burst: one POST with one event for each of ``--burst`` watched sessions (one batch touching
  all of them); the time from the POST to the first, median, 99th-percentile and last push,
  and, from the other client process, the slowest ``GET /healthz`` meanwhile (every 10 ms):
  how long the server's loop held requests.

``--trace-memory`` runs the server under ``tracemalloc`` and prints where the connections'
memory was allocated (by package or module of ours, and by source line, largest first); it
slows the server many times, so use fewer connections.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench_distributed import (
    add_service_args,
    drop_state,
    list_delays,
    show_logs,
    stop_processes,
)
from fanout_clients import pct, raise_fd_limit
from fanout_memory import snapshot, traced_growth

#: The client processes' program.
CLIENT_PROGRAM = Path(__file__).with_name("fanout_clients.py")

PRIVATE_BASE = 10**12 + 7_000_000_000
"""Watched sessions' ids: shoppers' private sessions (from 10^12), each watched with its token."""
BASE_SESSION = 7_000_000_000
"""With ``--public``: public demo sessions' ids, far from the generated sessions' ids."""
TICKS = os.sysconf("SC_CLK_TCK")

# The server's process: its descriptor limit raised to the hard limit, and with
# FANOUT_TRACE set, tracemalloc on and a snapshot written at each SIGUSR1.
SERVER_WRAPPER = """
import os, resource, signal, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
trace = os.environ.get("FANOUT_TRACE")
if trace:
    import tracemalloc
    tracemalloc.start(int(os.environ.get("FANOUT_TRACE_FRAMES", "1")))
    taken = [0]
    def snapshot(*_):
        taken[0] += 1
        tracemalloc.take_snapshot().dump(f"{trace}.{taken[0]}")
        open(f"{trace}.{taken[0]}.done", "w").close()
    signal.signal(signal.SIGUSR1, snapshot)
from liverec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


class ClientProcess:
    def __init__(self, workdir: Path, index: int) -> None:
        self.log = workdir / f"client-{index}.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(CLIENT_PROGRAM)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, text=True)

    def send(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()

    def reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"client {self.proc.pid} exited; see {self.log}")
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def each(clients: list[ClientProcess], cmd: str, fields: list[dict[str, Any]]
         ) -> list[dict[str, Any]]:
    for client, f in zip(clients, fields, strict=True):
        client.send(cmd, **f)
    return [client.reply() for client in clients]


# -- the server's side ------------------------------------------------------------------------

def auth_tokens(secret: str, sessions: list[int]) -> list[str] | None:
    """Each session's token, when this build has tokens (``web.auth``); else None."""
    try:
        from web.auth import issue_token
    except ImportError:  # a build before private sessions
        return None
    return [issue_token(secret.encode(), s) for s in sessions]


def server_env(args: argparse.Namespace, secret: str, key: str) -> dict[str, str]:
    many = str(args.connections * 2 + 1000)
    return {**os.environ, "LIVEREC_SECRET": secret, "LIVEREC_INGEST_KEY": key,
            # Every client is on 127.0.0.1: the per-process, per-address and per-session caps
            # and the post rate limits are raised past what the benchmark opens and posts.
            "LIVEREC_MAX_CONNECTIONS": many, "LIVEREC_MAX_CONNECTIONS_PER_CLIENT": many,
            "LIVEREC_MAX_TABS_PER_SESSION": many,
            "LIVEREC_POST_RATE": "1000000", "LIVEREC_POST_BURST": "1000000",
            "LIVEREC_SESSION_EVENT_RATE": "1000000", "LIVEREC_SESSION_EVENT_BURST": "1000000",
            "LIVEREC_CLIENT_EVENT_RATE": "1000000", "LIVEREC_CLIENT_EVENT_BURST": "1000000",
            "LIVEREC_RERANK": "true" if args.rerank else "false"}


def start_server(liverec_args: list[str], env: dict[str, str], log: Path,
                 trace: Path | None) -> subprocess.Popen[bytes]:
    if trace is not None:
        env = {**env, "FANOUT_TRACE": str(trace), "FANOUT_TRACE_FRAMES": "12"}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", SERVER_WRAPPER, *liverec_args],
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_until(check: Any, procs: list[subprocess.Popen[bytes]], timeout_s: float,
               what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a server process exited while waiting for {what}")
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout_s:.0f} s")
        time.sleep(0.5)


def generated(args: argparse.Namespace, workdir: Path) -> Path:
    path = workdir / "warm.jsonl"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "liverec", "generate", "--sessions",
                        str(args.warm_sessions), "--items", str(args.items), "--out", str(path)],
                       check=True, stdout=subprocess.DEVNULL)
    return path


def measure(args: argparse.Namespace, runtime: str, workdir: Path) -> dict[str, Any]:
    secret, key = secrets.token_hex(16), secrets.token_hex(16)
    env = server_env(args, secret, key)
    procs: list[subprocess.Popen[bytes]] = []
    cluster = None
    prefix = f"fanout-{uuid.uuid4().hex[:8]}-"
    trace = workdir / f"{runtime}.trace" if args.trace_memory else None
    port = args.port
    clients: list[ClientProcess] = []
    try:
        worker_port = 0
        if runtime == "demo":
            server = start_server(["demo", "--port", str(port), "--speed", "max", "--sessions",
                                   str(args.warm_sessions), "--items", str(args.items)],
                                  env, workdir / "demo.log", trace)
            procs.append(server)
            wait_until(lambda: get_json(port, "/stats").get("replay", {}).get("state")
                       == "finished", procs, 900, "end of the demo's replay")
            others: dict[str, int] = {}
        else:
            from liverec.local_cluster import LocalCluster

            cluster = LocalCluster(args.kafka, args.redis, prefix, workdir,
                                   env={k: v for k, v in env.items() if k.startswith("LIVEREC_")})
            worker = cluster.start_worker()
            procs.append(worker.process)
            cluster.wait_joined()
            server = start_server(["web", "--port", str(port)], cluster.env,
                                  workdir / "web.log", trace)
            procs.append(server)
            wait_until(lambda: get_json(port, "/readyz").get("ready"), procs, 120, "ready node")
            warm = generated(args, workdir)
            total = cluster.published(cluster.replay(warm))
            cluster.wait_drained(total, timeout_s=900)
            others = {"worker": worker.process.pid}
            worker_port = worker.metrics_port()
        pid = server.pid
        n = args.connections
        private = not args.public
        sessions = [(PRIVATE_BASE if private else BASE_SESSION) + i for i in range(n)]
        tokens = auth_tokens(secret, sessions) if private else None
        if private and tokens is None:
            raise RuntimeError("this build has no tokens (web.auth): use --public")
        time.sleep(args.settle)
        rss0 = rss_kib(pid)
        trace0 = snapshot(pid, trace, 1) if trace is not None else None
        clients = [ClientProcess(workdir, i) for i in range(args.clients)]
        shares = [sessions[i::args.clients] for i in range(args.clients)]
        token_shares = [tokens[i::args.clients] if tokens else None
                        for i in range(args.clients)]
        cpu0, t0 = cpu_s(pid), time.monotonic()
        replies = each(clients, "connect", [
            {"port": port, "sessions": share, "tokens": toks, "concurrency": args.concurrency}
            for share, toks in zip(shares, token_shares, strict=True)])
        connect_wall, connect_cpu = time.monotonic() - t0, cpu_s(pid) - cpu0
        connected = sum(r["connected"] for r in replies)
        errors: dict[str, int] = {}
        for r in replies:
            for name, count in r["errors"].items():
                errors[name] = errors.get(name, 0) + count
        subscribers = get_json(port, "/stats").get("subscribers")
        time.sleep(args.settle)
        rss1 = rss_kib(pid)
        traced = (traced_growth(trace0, snapshot(pid, trace, 2), connected)
                  if trace is not None and trace0 is not None and connected else [])
        idle0, t0 = cpu_s(pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle = (cpu_s(pid) - idle0) / (time.monotonic() - t0)
        stats0 = get_json(port, "/stats")
        cpu0, t0 = cpu_s(pid), time.monotonic()
        others0 = {name: cpu_s(p) for name, p in others.items()}
        pushed = each(clients, "push", [
            {"key": key, "rate": args.rate / args.clients, "seconds": args.seconds,
             "items": args.items, "pool": args.pool, "seed": i}
            for i in range(args.clients)])
        push_cpu = cpu_s(pid) - cpu0
        # What the open connections cost anyway (pings) over the phase, taken out.
        push_net = push_cpu - idle * (time.monotonic() - t0)
        others_cpu = {name: cpu_s(p) - others0[name] for name, p in others.items()}
        stats1 = get_json(port, "/stats")
        pushes = stats1["pushes"] - stats0["pushes"]
        # The worker's share: event in Kafka → lists announced (its histogram holds only
        # watched sessions' lists, so only this phase's, and the seeds' before it).
        delays = list_delays(worker_port) if runtime == "web" else None
        burst: dict[str, Any] = {}
        if args.burst:
            cpu0 = cpu_s(pid)
            # Another process times GET /healthz meanwhile: the one receiving the pushes
            # would delay its own requests.
            prober = clients[-1] if len(clients) > 1 else None
            if prober is not None:
                prober.send("probe_start")
                prober.reply()
            clients[0].send("burst", key=key, size=min(args.burst, len(shares[0])),
                            items=args.items, seed=99)
            burst = clients[0].reply()
            if prober is not None:
                prober.send("probe_stop")
                burst["probes"] = prober.reply()["probes"]
            burst["cpu"] = cpu_s(pid) - cpu0
            # The hub's own figure (batch start to send) over its last 2,048 pushes.
            burst["server"] = get_json(port, "/stats").get("latency_ms")
        time.sleep(args.settle)
        rss_pushed = rss_kib(pid)

        def close_all() -> list[dict[str, Any]]:
            closed = each(clients, "close", [{"concurrency": args.concurrency}] * len(clients))
            wait_until(lambda: get_json(port, "/stats").get("subscribers") == 0, procs, 120,
                       "all subscriptions released")
            time.sleep(args.settle)
            return closed

        closed = close_all()
        rss2 = rss_kib(pid)
        # Do the same connections fit in what the first ones left behind?
        rss3 = None
        if args.reconnect:
            each(clients, "connect", [
                {"port": port, "sessions": share, "tokens": toks,
                 "concurrency": args.concurrency}
                for share, toks in zip(shares, token_shares, strict=True)])
            time.sleep(args.settle)
            rss3 = rss_kib(pid)
            close_all()
        latencies = [ms for r in pushed for ms in r["latencies"]]
        return {
            "runtime": runtime, "connected": connected, "errors": errors,
            "subscribers": subscribers, "connect_s": connect_wall, "connect_cpu": connect_cpu,
            "rss0": rss0, "rss1": rss1, "rss_pushed": rss_pushed, "rss2": rss2, "rss3": rss3,
            "idle_cores": idle,
            "posted": sum(r["posted"] for r in pushed),
            "achieved": sum(r["achieved"] for r in pushed),
            "statuses": {s: sum(r["statuses"].get(s, 0) for r in pushed)
                         for r0 in pushed for s in r0["statuses"]},
            "latencies": latencies, "never": sum(r["never"] for r in pushed),
            "not_own": sum(r["not_own"] for r in pushed), "pushes": pushes,
            "push_cpu": push_cpu, "push_net": push_net, "delays": delays,
            "others_cpu": others_cpu, "server_latency": stats1.get("latency_ms"), "burst": burst,
            "dropped": sum(r["dropped"] for r in closed),
            "traced": traced, "tokens": tokens is not None,
        }
    except Exception:
        show_logs(sorted(workdir.glob("*.log")))
        raise
    finally:
        for client in clients:
            client.stop()
        stop_processes(procs, 30)
        if cluster is not None:
            cluster.close()
            drop_state(args.redis, prefix, args.kafka)


def fmt(value: float | None, spec: str = ",.1f") -> str:
    return "-" if value is None else format(value, spec)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, values: list[str]) -> None:
        rows.append((name, values))

    row("connections open (of asked)", [f"{r['connected']:,} of {args.connections:,}"
                                        for r in results])
    row("connect: wall s / server CPU s per 1,000",
        [f"{r['connect_s']:.1f} / {r['connect_cpu'] / max(1, r['connected']) * 1000:.2f}"
         for r in results])
    row("server RSS before, MiB", [fmt(r["rss0"] / 1024) for r in results])
    row("server RSS with all open, MiB", [fmt(r["rss1"] / 1024) for r in results])
    row("RSS per connection, KiB",
        [fmt((r["rss1"] - r["rss0"]) / max(1, r["connected"]), ".1f") for r in results])
    row("server RSS after pushes and burst, MiB", [fmt(r["rss_pushed"] / 1024) for r in results])
    row("server RSS after all closed, MiB (change)",
        [f"{r['rss2'] / 1024:,.1f} ({(r['rss2'] - r['rss_pushed']) / 1024:+,.1f})"
         for r in results])
    if args.reconnect:
        row("server RSS with all reopened, MiB (change)",
            [f"{r['rss3'] / 1024:,.1f} ({(r['rss3'] - r['rss2']) / 1024:+,.1f})"
             for r in results])
    row("idle server CPU, cores", [f"{r['idle_cores']:.3f}" for r in results])
    row("events posted (events/s achieved)",
        [f"{r['posted']:,} ({r['achieved']:,.0f}/s)" for r in results])
    row("POST answers", [", ".join(f"{s}: {c:,}" for s, c in sorted(r["statuses"].items()))
                         for r in results])
    row("pushes (server count)", [f"{r['pushes']:,}" for r in results])
    row("push latency p50 / p99 ms (client)",
        [f"{fmt(pct(r['latencies'], 0.5), '.1f')} / {fmt(pct(r['latencies'], 0.99), '.1f')}"
         for r in results])
    row("events timed / never pushed / pushed later",
        [f"{len(r['latencies']):,} / {r['never']:,} / {r['not_own']:,}" for r in results])
    row("server side latency ms (hub)", [str(r["server_latency"]) for r in results])
    row("server CPU s per 1,000 pushes (less idle)",
        [f"{r['push_cpu'] / max(1, r['pushes']) * 1000:.3f} "
         f"({r['push_net'] / max(1, r['pushes']) * 1000:.3f})" for r in results])
    row("  other processes, CPU s per 1,000 pushes",
        [", ".join(f"{n} {c / max(1, r['pushes']) * 1000:.3f}"
                   for n, c in r["others_cpu"].items()) or "-" for r in results])
    row("worker: event in Kafka to lists announced", [r["delays"] or "-" for r in results])
    if args.burst:
        for r in results:
            b = r["burst"]
            lat, probes = b.get("latencies", []), b.get("probes", [])
            b["text"] = (f"{len(lat):,} pushed: first {fmt(min(lat) if lat else None, '.0f')}"
                         f", p50 {fmt(pct(lat, 0.5), '.0f')}, p99 {fmt(pct(lat, 0.99), '.0f')}"
                         f", last {fmt(max(lat) if lat else None, '.0f')} ms; server CPU "
                         f"{b.get('cpu', 0):.2f} s; hub {b.get('server')}; GET /healthz "
                         f"meanwhile: max {fmt(max(probes) if probes else None, '.0f')} ms")
        row("burst: one POST touching N watched", [r["burst"]["text"] for r in results])
    row("connections dropped by the server", [f"{r['dropped']:,}" for r in results])
    row("sessions watched", ["private, with tokens" if r["tokens"] else "public"
                             for r in results])
    width = max(len(name) for name, _ in rows)
    print(f"\nfan-out, {args.connections:,} WebSockets on one web process, "
          f"{args.clients} client processes, {os.cpu_count()} cores")
    print(f"{'':{width}}  " + "  |  ".join(r["runtime"] for r in results))
    for name, values in rows:
        print(f"{name:{width}}  " + "  |  ".join(values))
    for r in results:
        for line in r["traced"]:
            print(f"[{r['runtime']}] {line}")
        if r["errors"]:
            print(f"[{r['runtime']}] connection errors: {r['errors']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--runtime", choices=("demo", "web", "both"), default="both")
    parser.add_argument("--rate", type=float, default=500.0,
                        help="events/s posted over the watched sessions (default 500)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="handshakes in flight per client process")
    parser.add_argument("--pool", type=int, default=16,
                        help="keep-alive POST connections per client process")
    parser.add_argument("--burst", type=int, default=2000,
                        help="sessions one POST touches at once after the steady phase (0: none)")
    parser.add_argument("--warm-sessions", type=int, default=5000,
                        help="generated sessions replayed first")
    parser.add_argument("--items", type=int, default=5000, help="generated catalog size")
    parser.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=True,
                        help="the re-rankers' lists (the runtimes' default)")
    parser.add_argument("--public", action="store_true",
                        help="watch public demo sessions (ids below 10^12, no token) instead "
                        "of shoppers' private ones (each with its token)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds before reading RSS (the server collects each second)")
    parser.add_argument("--idle-seconds", type=float, default=20.0,
                        help="seconds the idle server's CPU is measured (one ping round: 20)")
    parser.add_argument("--reconnect", action=argparse.BooleanOptionalAction, default=True,
                        help="after closing, open them all again: is the memory reused?")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--trace-memory", action="store_true",
                        help="tracemalloc in the server: where the connections' memory is")
    add_service_args(parser)
    args = parser.parse_args()
    raise_fd_limit()
    runtimes = ["demo", "web"] if args.runtime == "both" else [args.runtime]
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for runtime in runtimes:
            results.append(measure(args, runtime, Path(workdir)))
    report(results, args)
    print(f"command: python benchmarks/fanout.py {' '.join(sys.argv[1:])}")
    for r in results:
        r["burst"].pop("latencies", None)
        r["burst"].pop("probes", None)
    print(json.dumps([{k: v for k, v in r.items() if k not in ("latencies", "traced")}
                      | {"p50": statistics.median(r["latencies"]) if r["latencies"] else None,
                         "p99": pct(r["latencies"], 0.99)} for r in results], default=str),
          file=sys.stderr)


if __name__ == "__main__":
    main()
