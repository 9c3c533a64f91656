"""``/env/step`` latency and cost: a ``liverec env`` process, agents over kept-alive HTTP.

    python benchmarks/env_latency.py [--episodes 500] [--clients 4] [--items 5000]

Starts ``liverec env`` on a free port, then ``--clients`` threads each run episodes one after
another, each step showing 20 distinct items (half successors learned on the fly, half random:
the server's work does not depend on the list's quality). Prints the round-trip latency of
every step and reset (median, p99, max, measured by the client) and the server's CPU time per
call from ``/proc`` (Linux): the figure that does not move when other processes share the cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent(port: int, episodes: range, items: int, steps: list[float], resets: list[float]
          ) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    rng = random.Random(episodes.start)
    follows: dict[int, list[int]] = {}

    def call(path: str, body: dict) -> tuple[dict, float]:
        began = time.perf_counter()
        connection.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        took = time.perf_counter() - began
        if response.status >= 400:
            raise RuntimeError(f"{path}: {response.status} {answer}")
        return answer, took

    for e in episodes:
        state, took = call("/env/reset", {"seed": e})
        resets.append(took)
        last = state["history"][0]["aid"]
        done = False
        while not done:
            shown = list(dict.fromkeys(follows.get(last, [])[-10:]))
            while len(shown) < 20:
                aid = rng.randrange(items)
                if aid not in shown:
                    shown.append(aid)
            answer, took = call("/env/step", {"episode": state["episode"], "items": shown})
            steps.append(took)
            for event in answer["events"]:
                follows.setdefault(last, []).append(event["aid"])
                last = event["aid"]
            done = answer["done"]


def summary(name: str, seconds: list[float]) -> str:
    seconds = sorted(seconds)
    p = lambda q: 1000 * seconds[min(len(seconds) - 1, int(q * len(seconds)))]  # noqa: E731
    return (f"{name}: {len(seconds):,} calls, p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, "
            f"max {1000 * seconds[-1]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--items", type=int, default=5000)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "liverec", "env", "--port", str(port),
                               "--items", str(args.items), "--steps-per-s", "100000",
                               "--resets-per-s", "100000"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/env")
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        steps: list[float] = []
        resets: list[float] = []
        per = args.episodes // args.clients
        threads = [threading.Thread(target=agent, args=(port, range(c * per, (c + 1) * per),
                                                         args.items, steps, resets))
                   for c in range(args.clients)]
        cpu_before, wall = cpu_seconds(server.pid), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu = cpu_seconds(server.pid) - cpu_before
        wall = time.perf_counter() - wall
        calls = len(steps) + len(resets)
        print(f"{args.clients} clients, {per * args.clients:,} episodes in {wall:.1f} s "
              f"({calls / wall:,.0f} calls/s)")
        print(summary("step", steps))
        print(summary("reset", resets))
        print(f"server CPU: {cpu:.2f} s, {1e6 * cpu / calls:.0f} µs per call "
              f"({cpu / wall:.2f} cores)")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
