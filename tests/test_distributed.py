"""The distributed path end to end: replay → Kafka (4 partitions) → 2 Faust workers → Redis."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from online_models.redis_store import RedisStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SERVICES = Path(__file__).resolve().parents[1] / "deploy" / "local" / "services.sh"


def liverec(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "liverec", *args], env=env, text=True,
                          capture_output=True, timeout=120, check=True)


def replay_through_two_workers(
    kafka_url: str, redis_url: str, prefix: str, data: Path, tmp_path: Path,
    incident: Callable[[list[subprocess.Popen[bytes]]], None] | None = None,
    speed: str = "max",
) -> None:
    """Replay ``data`` into 2 workers on 4 partitions, let ``incident`` strike 5 s in, wait
    until every event is applied, and compare the Redis dump with the batch result."""
    env = {**os.environ, "LIVEREC_BUS": kafka_url, "LIVEREC_STORE": redis_url,
           "LIVEREC_TOPIC_PREFIX": prefix, "LIVEREC_APP_ID": prefix.rstrip("-"),
           "LIVEREC_PARTITIONS": "4", "LIVEREC_MAX_NEIGHBORS": "0", "LIVEREC_MAX_BATCH": "50"}
    ports = [free_port(), free_port()]
    workers = [subprocess.Popen([sys.executable, "-m", "liverec", "worker"],
                                env={**env, "LIVEREC_METRICS_PORT": str(port)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for port in ports]
    store = RedisStore.from_url(redis_url, prefix)
    try:
        time.sleep(12)
        assert all(w.poll() is None for w in workers), "a worker exited"
        replay = subprocess.Popen([sys.executable, "-m", "liverec", "replay", str(data), "--to",
                                   kafka_url, "--speed", speed, "--quiet"], env=env,
                                  stdout=subprocess.PIPE, text=True)
        if incident is not None:
            time.sleep(5)
            incident(workers)
        out, _ = replay.communicate(timeout=180)
        total = int(out.split("published ")[1].split(" events")[0].replace(",", ""))
        topic = f"{prefix}events"
        deadline = time.monotonic() + 120
        while sum(store.stored_offset(topic, p) or 0 for p in range(4)) < total:
            assert time.monotonic() < deadline, "the workers did not catch up"
            time.sleep(0.5)
        dumped, batch = tmp_path / "store.jsonl", tmp_path / "batch.jsonl"
        liverec("covis", "--from-store", redis_url, "--out", str(dumped), env=env)
        liverec("covis", str(data), "--mode", "batch", "--out", str(batch), env=env)
        assert dumped.read_bytes() == batch.read_bytes()
        if incident is None:  # every event was applied once, by one of the two workers
            metrics = [scrape(port) for port in ports]
            assert sum(m["liverec_events_processed_total"] for m in metrics) == total
            assert sum(m["liverec_events_rejected_total"] for m in metrics) == 0
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(20)
        keys = list(store.client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            store.client.delete(*keys)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """A worker's /metrics, unlabelled samples only, name → value."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.split()[0]: float(line.split()[1]) for line in body.splitlines()
            if line and not line.startswith("#") and "{" not in line}


def generated(tmp_path: Path) -> Path:
    """~7,000 events over 28 days: at --speed 200000 a replay of ~12 s."""
    data = tmp_path / "sessions.jsonl"
    liverec("generate", "--sessions", "400", "--items", "300", "--seed", "11", "--out",
            str(data), env=dict(os.environ))
    return data


def test_two_workers_on_four_partitions_store_the_batch_matrices(
    kafka_url: str, redis_url: str, unique_prefix: str, shared_data: Path, tmp_path: Path
) -> None:
    replay_through_two_workers(kafka_url, redis_url, unique_prefix,
                               shared_data / "otto-sample" / "train.jsonl", tmp_path)


def test_a_worker_killed_mid_replay_loses_nothing_and_counts_nothing_twice(
    kafka_url: str, redis_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    """kill -9 one of two workers while events flow; the group rebalances, the survivor
    reloads the dead worker's sessions from Redis, and the result still equals the batch."""
    def kill_one(workers: list[subprocess.Popen[bytes]]) -> None:
        workers[0].kill()  # SIGKILL: no goodbye to the group, no final commit

    replay_through_two_workers(kafka_url, redis_url, unique_prefix, generated(tmp_path),
                               tmp_path, kill_one, speed="200000")


def test_a_redis_restart_mid_replay_loses_nothing(
    kafka_url: str, redis_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    """Redis stops (its append-only file flushed) and comes back while events flow; the
    workers wait for it, and the result still equals the batch."""
    def restart_redis(workers: list[subprocess.Popen[bytes]]) -> None:
        client = redis.Redis.from_url(redis_url)
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown()
        time.sleep(2)
        subprocess.run([str(SERVICES), "up"], check=True, capture_output=True, timeout=60)

    try:
        replay_through_two_workers(kafka_url, redis_url, unique_prefix, generated(tmp_path),
                                   tmp_path, restart_redis, speed="200000")
    finally:  # whatever happened, leave Redis up for the tests after this one
        subprocess.run([str(SERVICES), "up"], check=True, capture_output=True, timeout=60)
