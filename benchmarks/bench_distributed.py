"""What the distributed benchmarks share: where the local services are, a worker's phase
timings and logs, and removing a run's state."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from pathlib import Path

import redis

from online_models.redis_store import RedisStore


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


def aof_rewrites(redis_url: str) -> int | None:
    """How many times Redis has rewritten its append-only file since it started (None: no
    such count). A rewrite forks Redis and writes its whole dataset anew, and on a machine
    whose cores the benchmark's processes share, that shows in the latency tail."""
    client = redis.Redis.from_url(redis_url)
    try:
        count = client.info("persistence").get("aof_rewrites")
    finally:
        client.close()
    return None if count is None else int(count)


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
