"""The distributed path end to end: replay → Kafka (4 partitions) → 2 Faust workers → Redis
→ stateless web nodes."""

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

from liverec.runtime import pipeline_config
from liverec.settings import Settings
from online_models.redis_store import RedisStore
from producers.ordering import time_ordered
from producers.readers import read_events
from stream.pipeline import SessionPipeline
from stream.serving import lists_from_store, load_states

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SERVICES = Path(__file__).resolve().parents[1] / "deploy" / "local" / "services.sh"


def liverec(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "liverec", *args], env=env, text=True,
                          capture_output=True, timeout=120, check=True)


def distributed_env(kafka_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    """The environment of a test's own deployment: its topics, group and keys, 4 partitions."""
    return {**os.environ, "LIVEREC_BUS": kafka_url, "LIVEREC_STORE": redis_url,
            "LIVEREC_TOPIC_PREFIX": prefix, "LIVEREC_APP_ID": prefix.rstrip("-"),
            "LIVEREC_PARTITIONS": "4"}


def replay_through_two_workers(
    kafka_url: str, redis_url: str, prefix: str, data: Path, tmp_path: Path,
    incident: Callable[[list[subprocess.Popen[bytes]]], int | None] | None = None,
    speed: str = "max",
) -> list[dict[str, float]]:
    """Replay ``data`` into 2 workers on 4 partitions, let ``incident`` strike 5 s in, wait
    until every event is applied, and compare the Redis dump with the batch result and the
    sessions' lists with the embedded pipeline's. ``incident`` returns how many messages it
    added to the topic, if any. Returns the workers' metrics (when both survived)."""
    env = {**distributed_env(kafka_url, redis_url, prefix), "LIVEREC_MAX_NEIGHBORS": "0",
           "LIVEREC_MAX_BATCH": "50", "LIVEREC_MODEL_SYNC_SECONDS": "1",
           # Sessions live through the whole log, so that every one has lists to compare.
           "LIVEREC_SESSION_TTL_DAYS": "10000"}
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
        extra = 0
        if incident is not None:
            time.sleep(5)
            extra = incident(workers) or 0
        out, _ = replay.communicate(timeout=240)
        total = int(out.split("published ")[1].split(" events")[0].replace(",", ""))
        topic = f"{prefix}events"
        deadline = time.monotonic() + 120
        while sum(store.stored_offset(topic, p) or 0 for p in range(4)) < total + extra:
            assert time.monotonic() < deadline, "the workers did not catch up"
            time.sleep(0.5)
        dumped, batch = tmp_path / "store.jsonl", tmp_path / "batch.jsonl"
        liverec("covis", "--from-store", redis_url, "--out", str(dumped), env=env)
        liverec("covis", str(data), "--mode", "batch", "--out", str(batch), env=env)
        assert dumped.read_bytes() == batch.read_bytes()
        assert_lists_equal_embedded(store, data, env)
        metrics = []
        if all(w.poll() is None for w in workers):  # each event applied once, by one worker
            metrics = [scrape(port) for port in ports]
            assert sum(m["liverec_events_processed_total"] for m in metrics) == total
            assert sum(m["liverec_events_rejected_total"] for m in metrics) == extra
            # The re-rankers (on by default) judged events and shared snapshots in Redis.
            assert sum(m['liverec_prequential_judged_total{objective="clicks"}']
                       for m in metrics) > 0
            assert all(m["liverec_model_version"] >= 1 for m in metrics)
            assert store.model_version("rerank") >= 1
        return metrics
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(20)
        store.clear()


def assert_lists_equal_embedded(store: RedisStore, data: Path, env: dict[str, str]) -> None:
    """Every session gets the same lists from Redis as from the embedded pipeline."""
    settings = Settings(**{k[len("LIVEREC_"):].lower(): v for k, v in env.items()
                           if k.startswith("LIVEREC_") and k != "LIVEREC_METRICS_PORT"})
    embedded = SessionPipeline(pipeline_config(settings, rerank=False))
    events = list(time_ordered(read_events(data)))
    embedded.apply(events)
    sessions = sorted({e.session for e in events})
    assert all(s in embedded.sessions for s in sessions)
    served = lists_from_store(store, load_states(store, sessions, embedded.config.covis.window))
    assert served == {s: embedded.recommendations(s) for s in sessions}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """A worker's /metrics, sample (with its labels, if any) → value."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
            if line and not line.startswith("#")}


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


def test_a_kafka_restart_mid_replay_loses_nothing(
    kafka_url: str, redis_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    """The broker stops and starts again while the producer sends and the workers consume;
    both wait it out (acks=all with idempotence on one side, offsets in Redis on the other),
    and the result still equals the batch."""
    def restart_kafka(workers: list[subprocess.Popen[bytes]]) -> None:
        subprocess.run([str(SERVICES), "stop", "kafka"], check=True, capture_output=True,
                       timeout=60)
        time.sleep(2)
        subprocess.run([str(SERVICES), "up"], check=True, capture_output=True, timeout=120)

    try:
        replay_through_two_workers(kafka_url, redis_url, unique_prefix, generated(tmp_path),
                                   tmp_path, restart_kafka, speed="100000")
    finally:
        subprocess.run([str(SERVICES), "up"], check=True, capture_output=True, timeout=120)


BAD_MESSAGES = [
    b"not json at all",
    b'{"aid": 1, "ts": 1659304800000, "type": "clicks"}',                  # no session
    b'{"session": "x", "aid": 1, "ts": 1659304800000, "type": "clicks"}',  # ill-typed
    b'{"session": 1, "aid": 1, "ts": 1659304800000, "type": "views"}',     # unknown type
    b'{"session": 1, "aid": 1, "ts": -5, "type": "clicks"}',               # negative ts
    b'{"session": 1, "aid": 1, "ts": 99999999999999999, "type": "clicks"}',  # absurd ts
    b'{"session": 1, "aid": 1, "ts": 1659304800000, "type": "clicks", "pad": "'
    + b"x" * 5000 + b'"}',                                                  # oversize
]


def test_bad_messages_on_the_topic_go_to_the_dead_letter_topic_and_change_nothing(
    kafka_url: str, redis_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    """Invalid messages land among good ones mid-replay: the workers route each to
    ``events.dlq`` with its reason, count them, keep going, and the good events' results
    still equal the batch result of the file alone."""
    from kafka import KafkaConsumer, KafkaProducer

    bootstrap = kafka_url.removeprefix("kafka://")

    def inject(workers: list[subprocess.Popen[bytes]]) -> int:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i, value in enumerate(BAD_MESSAGES * 2):
            producer.send(f"{unique_prefix}events", value=value, key=str(i).encode(),
                          partition=i % 4)
        producer.flush()
        producer.close()
        return len(BAD_MESSAGES) * 2

    metrics = replay_through_two_workers(kafka_url, redis_url, unique_prefix,
                                         generated(tmp_path), tmp_path, inject,
                                         speed="200000")
    assert sum(m["liverec_events_rejected_total"] for m in metrics) == 2 * len(BAD_MESSAGES)
    consumer = KafkaConsumer(f"{unique_prefix}events.dlq", bootstrap_servers=bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    dead = list(consumer)
    consumer.close()
    assert sorted(m.value for m in dead) == sorted(BAD_MESSAGES * 2)
    reasons = {dict(m.headers)["reason"].decode() for m in dead}
    assert any("session" in r for r in reasons) and any("ts" in r for r in reasons)


def test_a_web_node_pushes_what_the_workers_announce(
    kafka_url: str, redis_url: str, unique_prefix: str
) -> None:
    """A stateless `liverec web` node: a client watches a session over WebSocket, events are
    posted to the node (→ Kafka → worker → Redis → lists channel → node → client), and the
    pushed lists are the ones the node serves over REST."""
    import httpx
    import orjson
    from websockets.sync.client import connect

    env = {**distributed_env(kafka_url, redis_url, unique_prefix),
           "LIVEREC_METRICS_PORT": str(free_port())}
    web_port = free_port()
    worker = subprocess.Popen([sys.executable, "-m", "liverec", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    web = subprocess.Popen([sys.executable, "-m", "liverec", "web", "--port", str(web_port)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{web_port}"
    store = RedisStore.from_url(redis_url, unique_prefix)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline and web.poll() is None, "web node not ready"
            time.sleep(0.5)
        time.sleep(10)  # the worker joins its group
        with connect(f"ws://127.0.0.1:{web_port}/ws/sessions/4242", open_timeout=10) as ws:
            first = orjson.loads(ws.recv(timeout=10))
            assert first["session"] == 4242 and first["version"] == 0
            events = [{"session": 4242, "aid": aid, "type": "clicks"} for aid in (7, 8, 9)]
            posted = time.time()
            assert httpx.post(f"{base}/events", json=events, timeout=10).status_code == 202
            pushed = first
            while pushed["version"] < 3:
                pushed = orjson.loads(ws.recv(timeout=30))
            took = time.time() - posted
        assert pushed["clicks"][:3] == [9, 8, 7]
        served = httpx.get(f"{base}/sessions/4242/recommendations", timeout=10).json()
        assert served == pushed
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert "liverec_events_processed_total 3.0" in metrics
        # The worker times its announcements from the events' arrival in Kafka: each took
        # at most what the client waited from its POST to the push.
        worker_metrics = httpx.get(f"http://127.0.0.1:{env['LIVEREC_METRICS_PORT']}/metrics",
                                   timeout=10).text
        delay = {line.split()[0]: float(line.split()[1]) for line in worker_metrics.splitlines()
                 if line.startswith("liverec_list_delay_seconds_")}
        count = delay["liverec_list_delay_seconds_count"]
        assert count >= 1 and 0 < delay["liverec_list_delay_seconds_sum"] <= count * took
        assert store.model_version("rerank") >= 1  # the worker's re-rankers, saved
        assert store.live_sessions(5)[0] == 4242
    finally:
        for proc in (web, worker):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
            proc.kill()
        store.clear()
