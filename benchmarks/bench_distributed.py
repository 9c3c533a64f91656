"""What the distributed benchmarks share: where the local services are, a worker's phase
timings and logs, and removing a run's state."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, cast

import redis

from distributed.store import RedisStore


def add_service_args(parser: argparse.ArgumentParser) -> None:
    """``--kafka`` and ``--redis``, defaulting to ``deploy/local/services.sh``'s ports."""
    parser.add_argument("--kafka", default=f"kafka://127.0.0.1:"
                                           f"{os.environ.get('LIVEREC_KAFKA_PORT', '9092')}")
    parser.add_argument("--redis", default=f"redis://127.0.0.1:"
                                           f"{os.environ.get('LIVEREC_REDIS_PORT', '6379')}/0")


def worker_phases(port: int) -> dict[str, float]:
    """Seconds a worker spent per phase of its batches, and its batch count, from /metrics."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    phases = {line.split('"')[1]: round(float(line.split()[-1]), 2)
              for line in body.splitlines() if line.startswith("liverec_worker_seconds_total{")}
    batches = [float(line.split()[-1]) for line in body.splitlines()
               if line.startswith("liverec_worker_batches_total ")]
    return {**phases, "batches": batches[0] if batches else 0}


def list_delays(port: int) -> str:
    """A worker's ``liverec_list_delay_seconds`` (event in Kafka → lists announced), in words:
    the share within 50 ms, and the median and 99th percentile interpolated within their
    buckets (as PromQL's ``histogram_quantile`` does)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    buckets = [(float(line.split('"')[1]), float(line.split()[-1])) for line in body.splitlines()
               if line.startswith("liverec_list_delay_seconds_bucket{")]
    total = buckets[-1][1] if buckets else 0
    if not total:
        return "no lists announced"

    def quantile(q: float) -> str:
        below, lower = 0.0, 0.0
        for bound, count in buckets:
            if count >= q * total:
                if bound == float("inf"):
                    return f"> {lower:g} s"
                share = (q * total - below) / (count - below) if count > below else 1.0
                return f"~{(lower + share * (bound - lower)) * 1000:.0f} ms"
            below, lower = count, bound
        raise AssertionError("the +Inf bucket holds every observation")

    within = next(count for le, count in buckets if le == 0.05)
    return (f"{total:,.0f} announced, {within / total:.1%} within 50 ms; "
            f"p50 {quantile(0.5)}, p99 {quantile(0.99)}")


def _info(redis_url: str, section: str) -> dict[str, Any]:
    """One section of Redis's ``INFO``."""
    client = redis.Redis.from_url(redis_url)
    try:
        return cast(dict[str, Any], client.info(section))
    finally:
        client.close()


def aof_rewrites(redis_url: str) -> int | None:
    """How many times Redis has rewritten its append-only file since it started (None: no
    such count). A rewrite forks Redis and writes its whole dataset anew, and on a machine
    whose cores the benchmark's processes share, that shows in the latency tail."""
    count = _info(redis_url, "persistence").get("aof_rewrites")
    return None if count is None else int(count)


def local_pids(redis_url: str) -> dict[str, int]:
    """The local Kafka broker's and Redis server's process ids, where they run on this
    machine (Linux): the broker by its main class, Redis by what it reports."""
    pids: dict[str, int] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return pids
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if b"kafka.Kafka" in (entry / "cmdline").read_bytes():
                    pids["Kafka"] = int(entry.name)
            except OSError:  # gone meanwhile, or not ours to read
                continue
    pid = int(_info(redis_url, "server").get("process_id", 0))
    if pid and (proc / str(pid)).is_dir():
        pids["Redis"] = pid
    return pids


class CpuShares:
    """The CPU each process used between :meth:`start` and :meth:`stop`, in cores, and how
    busy the machine's cores were meanwhile (Linux ``/proc``; elsewhere :meth:`report` says
    so). The benchmark's processes share this machine's cores with Kafka, Redis and the
    client itself: a latency figure means little without them."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.begun: tuple[float, list[int], dict[str, int]] | None = None
        self.ended: tuple[float, list[int], dict[str, int]] | None = None

    def _sample(self) -> tuple[float, list[int], dict[str, int]]:
        with open("/proc/stat") as stat:
            machine = [int(v) for v in stat.readline().split()[1:]]
        used: dict[str, int] = {}
        for name, pid in self.pids.items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[name] = int(fields[11]) + int(fields[12])  # utime + stime
        return time.monotonic(), machine, used

    def start(self) -> None:
        if Path("/proc/stat").exists():
            self.begun = self._sample()

    def stop(self) -> None:
        if self.begun is not None:
            self.ended = self._sample()

    def report(self) -> str:
        if self.begun is None or self.ended is None:
            return "not measured (no /proc on this system)"
        (t0, m0, u0), (t1, m1, u1) = self.begun, self.ended
        spent = [b - a for a, b in zip(m0, m1, strict=False)]
        idle = spent[3] + spent[4]  # idle and iowait
        busy = 1 - idle / max(1, sum(spent))
        shares = ", ".join(f"{name} {(u1[name] - u0[name]) / self.ticks / (t1 - t0):.2f}"
                           for name in self.pids if name in u0 and name in u1)
        return (f"machine {busy:.0%} busy over {os.cpu_count()} cores; cores used: {shares}")


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout_s: float = 20) -> None:
    """Ask each running process to stop (SIGINT, as Ctrl-C), then kill what has not."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def show_logs(paths: list[Path], lines: int = 40) -> None:
    """The last lines of the processes' logs, on stderr: why a run stopped."""
    for path in paths:
        tail = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        print(f"--- last {len(tail)} lines of {path}", file=sys.stderr)
        for line in tail:
            print(f"    {line}", file=sys.stderr)


def drop_state(redis_url: str, prefix: str, kafka_url: str | None = None) -> None:
    """Delete a run's keys from Redis and, with ``kafka_url``, its topics from Kafka: a broker
    left with every earlier run's topics (hundreds of partitions) slows the next runs."""
    RedisStore.from_url(redis_url, prefix).clear()
    if kafka_url is None:
        return
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_url.removeprefix("kafka://"))
    try:
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            admin.delete_topics(topics)
    finally:
        admin.close()
