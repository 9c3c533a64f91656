"""The distributed path end to end: replay → Kafka (4 partitions) → 2 Faust workers → Redis
→ stateless web nodes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from distributed.store import RedisStore
from liverec.local_cluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SERVICES = Path(__file__).resolve().parents[1] / "deploy" / "local" / "services.sh"


def distributed_env(kafka_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    """The environment of a test's own deployment: its topics, group and keys, 4 partitions."""
    return {**os.environ, "LIVEREC_BUS": kafka_url, "LIVEREC_STORE": redis_url,
            "LIVEREC_TOPIC_PREFIX": prefix, "LIVEREC_APP_ID": prefix.rstrip("-"),
            "LIVEREC_PARTITIONS": "4"}


def replay_through_two_workers(
    kafka_url: str, redis_url: str, prefix: str, data: Path, tmp_path: Path,
    incident: Callable[[LocalCluster], int] | None = None, env: dict[str, str] | None = None,
    check: Callable[[LocalCluster], None] | None = None,
) -> list[dict[str, float]]:
    """The small, fast variant of ``tests/test_drills.py``: replay ``data`` into 2 workers
    (batches of 50) on 4 partitions, let ``incident`` add messages to the topic, wait until
    every message is applied, compare with the batch matrices and the embedded lists, then
    ``check`` the deployment. Returns the workers' metrics."""
    cluster = LocalCluster(kafka_url, redis_url, prefix, tmp_path,
                           env={"LIVEREC_MAX_BATCH": "50", "LIVEREC_MODEL_SYNC_SECONDS": "1",
                                **(env or {})})
    try:
        workers = [cluster.start_worker(), cluster.start_worker()]
        cluster.wait_joined()
        replay = cluster.replay(data)
        extra = incident(cluster) if incident is not None else 0
        total = cluster.published(replay)
        cluster.wait_drained(total + extra, timeout_s=120)
        result = cluster.compare(data)
        assert result.equal, result
        metrics = [w.metrics() for w in workers]
        assert sum(m["liverec_events_processed_total"] for m in metrics) == total
        assert sum(m["liverec_events_rejected_total"] for m in metrics) == extra
        # The re-rankers (on by default) judged events and shared snapshots in Redis.
        assert sum(m['liverec_prequential_judged_total{objective="clicks"}']
                   for m in metrics) > 0
        assert sum(m['liverec_rerank_judged_total{objective="clicks"}'] for m in metrics) > 0
        assert all('liverec_rerank_serving_model{objective="orders"}' in m for m in metrics)
        assert all(m["liverec_model_version"] >= 1 for m in metrics)
        assert cluster.store.model_version("rerank") >= 1
        if check is not None:
            check(cluster)
        return metrics
    finally:
        cluster.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def generated(tmp_path: Path) -> Path:
    """~7,000 events over 28 days."""
    data = tmp_path / "sessions.jsonl"
    subprocess.run([sys.executable, "-m", "liverec", "generate", "--sessions", "400",
                    "--items", "300", "--seed", "11", "--out", str(data)],
                   check=True, capture_output=True, timeout=120)
    return data


def test_two_workers_on_four_partitions_store_the_batch_matrices(
    kafka_url: str, redis_url: str, unique_prefix: str, shared_data: Path, tmp_path: Path
) -> None:
    replay_through_two_workers(kafka_url, redis_url, unique_prefix,
                               shared_data / "otto-sample" / "train.jsonl", tmp_path)


def test_workers_forget_old_epochs_as_the_batch_definition_does(
    kafka_url: str, redis_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    """14-day epochs: the generated log's 28 days cross two or three of them, so the workers
    forget epochs, and delete their logs, while partitions are out of step; matrices and
    lists still equal the batch definition's and the embedded runtime's."""
    def forgotten(cluster: LocalCluster) -> None:
        client = cluster.store.client
        latest = int(client.get(f"{unique_prefix}cv:epoch") or -1)
        kept = {int(e) for e in client.smembers(f"{unique_prefix}cv:epochs")}
        assert latest > 0 and kept == {latest - 1, latest}
        deadline = time.monotonic() + 30  # the workers delete old logs beside compaction
        while True:
            epochs = {int(key.decode().rsplit(":", 2)[1])
                      for key in client.scan_iter(match=f"{unique_prefix}cv:*:*:*")}
            if epochs <= kept:
                break
            assert time.monotonic() < deadline, f"logs of epochs {epochs - kept} are left"
            time.sleep(0.5)

    data = generated(tmp_path)
    events = [e for line in data.read_text().splitlines() for e in orjson.loads(line)["events"]]
    days = (max(e["ts"] for e in events) - min(e["ts"] for e in events)) / 86_400_000
    assert days > 28  # two or more 14-day epochs begin during the replay
    replay_through_two_workers(kafka_url, redis_url, unique_prefix, data, tmp_path,
                               env={"LIVEREC_COVIS_EPOCH_HALF_LIVES": "1"}, check=forgotten)


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

    def inject(cluster: LocalCluster) -> int:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i, value in enumerate(BAD_MESSAGES * 2):
            producer.send(f"{unique_prefix}events", value=value, key=str(i).encode(),
                          partition=i % 4)
        producer.flush()
        producer.close()
        return len(BAD_MESSAGES) * 2

    metrics = replay_through_two_workers(kafka_url, redis_url, unique_prefix,
                                         generated(tmp_path), tmp_path, inject)
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
    from websockets.exceptions import ConnectionClosed
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
        created = httpx.post(f"{base}/sessions", timeout=10)
        assert created.status_code == 201
        session, token = created.json()["session"], created.json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        url = f"ws://127.0.0.1:{web_port}/ws/sessions/{session}"
        with connect(url, open_timeout=10) as refused:  # no token: closed with 4401
            with pytest.raises(ConnectionClosed) as closed:
                refused.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        with connect(f"{url}?token={token}", open_timeout=10) as ws:
            first = orjson.loads(ws.recv(timeout=10))
            assert first["session"] == session and first["version"] == 0
            events = [{"session": session, "aid": aid, "type": "clicks"} for aid in (7, 8, 9)]
            posted = time.time()
            assert httpx.post(f"{base}/events", json=events, headers=bearer,
                              timeout=10).status_code == 202
            pushed = first
            while pushed["version"] < 3:
                pushed = orjson.loads(ws.recv(timeout=30))
            took = time.time() - posted
        assert pushed["clicks"][:3] == [9, 8, 7]
        assert [r["source"] for r in pushed["why"]["clicks"][:3]] == ["you_viewed"] * 3
        served = httpx.get(f"{base}/sessions/{session}/recommendations", headers=bearer,
                           timeout=10).json()
        assert served == pushed
        assert httpx.get(f"{base}/sessions/{session}/recommendations",
                         timeout=10).status_code == 401
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
        assert store.live_sessions(5)[0] == session
    finally:
        for proc in (web, worker):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
            proc.kill()
        store.clear()
