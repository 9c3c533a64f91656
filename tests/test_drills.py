"""The distributed runtime at a user's scale, and the faults it must survive: 50,928 events
(3,000 sessions over 62 days, sessions up to 500 events, items with rows of over 1,000
neighbours) replayed through Kafka into two workers on four partitions; after each drill the
Redis matrices equal the batch recomputation and every session's lists equal the embedded
runtime's. Each worker starts with the defaults (its metrics port is the next free one)."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from liverec.local_cluster import Comparison, LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SERVICES = Path(__file__).resolve().parents[1] / "deploy" / "local" / "services.sh"
#: The log spans 62 days: at this speed a replay takes about 75 s, time for faults.
DRILL_SPEED = "70000"


@pytest.fixture(scope="module")
def users_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``liverec generate --sessions 3000 --items 4000 --seed 99``: the file a user tried."""
    path = tmp_path_factory.mktemp("log") / "sessions.jsonl"
    subprocess.run([sys.executable, "-m", "liverec", "generate", "--sessions", "3000",
                    "--items", "4000", "--seed", "99", "--out", str(path)],
                   check=True, capture_output=True, timeout=120)
    return path


@pytest.fixture
def cluster(kafka_url: str, redis_url: str, unique_prefix: str,
            tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(kafka_url, redis_url, unique_prefix, tmp_path)
    yield local
    local.close()


Incident = Callable[[LocalCluster], None]


def replay_through_two_workers(cluster: LocalCluster, data: Path, speed: str = "max",
                               incident: Incident | None = None) -> Comparison:
    """Two workers, the replay, the incident while it runs, then the comparison once every
    message is applied."""
    for worker in (cluster.start_worker(), cluster.start_worker()):
        worker.metrics_port()  # both run, each on a port of its own
    cluster.wait_joined()
    for worker in cluster.workers[-2:]:  # what an operator reads: the worker says it took over
        worker.wait_probe("/readyz", "partitions", passing=True)
        assert "assigned: [" in worker.tail(200), worker.tail()
    replay = cluster.replay(data, speed)
    if incident is not None:
        incident(cluster)
    total = cluster.published(replay)
    assert total == 50_928
    cluster.wait_drained(total)
    return cluster.compare(data)


def assert_all_equal(result: Comparison) -> None:
    assert result.lost == 0 and result.twice == 0, f"lost {result.lost}, twice {result.twice}"
    assert result.rows_differing == [], f"{len(result.rows_differing)} rows differ"
    assert result.sessions_differing == [], (
        f"{len(result.sessions_differing)} of {result.sessions} sessions' lists differ")


def assert_every_worker_consumed(cluster: LocalCluster) -> None:
    """No drill passes because a worker never ran: each process stored events of its own."""
    for worker in cluster.workers:
        if worker.alive:
            worker.metrics()
        assert worker.last.get("liverec_events_processed_total", 0) > 0, worker.tail()


def test_two_workers_store_the_batch_matrices_and_serve_the_embedded_lists(
        cluster: LocalCluster, users_log: Path) -> None:
    assert_all_equal(replay_through_two_workers(cluster, users_log))
    assert_every_worker_consumed(cluster)


def test_with_a_sequence_model_both_runtimes_serve_the_same_lists(
        kafka_url: str, redis_url: str, unique_prefix: str, tmp_path: Path,
        users_log: Path) -> None:
    """``LIVEREC_SEQUENCE_MODEL`` on the workers: they learn with its picks as candidates and
    features, and lists from Redis equal the embedded runtime's with the same file."""
    from liverec.runtime import pipeline_config
    from online_models.sequence import SequenceConfig, SequenceModel

    model = tmp_path / "model.npz"
    SequenceModel.untrained(SequenceConfig(kind="gru4rec", dim=8), range(4000)).save(model)
    local = LocalCluster(kafka_url, redis_url, unique_prefix, tmp_path,
                         env={"LIVEREC_SEQUENCE_MODEL": str(model)})
    try:
        rerank = pipeline_config(local.settings, distributed=True).rerank
        assert rerank is not None and rerank.sequence_model == str(model)
        assert_all_equal(replay_through_two_workers(local, users_log))
        assert_every_worker_consumed(local)
        for worker in local.workers:  # each read the model
            assert worker.last.get("liverec_sequence_model_items") == 4000, worker.tail()
    finally:
        local.close()


def test_partitions_published_out_of_step_give_the_same_result(
        cluster: LocalCluster, users_log: Path, kafka_url: str) -> None:
    """Kafka orders each partition, never the partitions among themselves: here all of one
    partition's 62 days are published before the next one's. A worker holding two of them
    sees one weeks ahead of the other; its sessions must still expire by their own
    partition's time (before lanes, live sessions lost their open runs and counted again)."""
    from kafka import KafkaProducer

    from producers.kafka_sink import KafkaSink
    from producers.ordering import time_ordered
    from producers.readers import read_events
    from stream.wire import encode

    for worker in (cluster.start_worker(), cluster.start_worker()):
        worker.metrics_port()
    cluster.wait_joined()
    KafkaSink(kafka_url, cluster.topic, cluster.partitions).ensure_topic()
    by_partition: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in
                                                          range(cluster.partitions)}
    for event in time_ordered(read_events(users_log)):  # a session keeps its partition
        by_partition[event.session % cluster.partitions].append(encode(event))
    producer = KafkaProducer(bootstrap_servers=kafka_url.removeprefix("kafka://"), acks="all",
                             enable_idempotence=True, linger_ms=5)
    for partition, messages in by_partition.items():
        for key, value in messages:
            producer.send(cluster.topic, key=key, value=value, partition=partition)
        producer.flush()
    producer.close()
    cluster.wait_drained(50_928)
    assert_all_equal(cluster.compare(users_log))
    assert_every_worker_consumed(cluster)


def test_workers_killed_three_times_mid_replay_lose_nothing(
        cluster: LocalCluster, users_log: Path) -> None:
    """SIGKILL (no goodbye, no last commit) at three random points of the replay, each time
    a replacement started at once: the group rebalances, the survivors reload the dead
    one's sessions from Redis, and Redis's offsets skip what it had stored."""
    rng = random.Random()

    def kill_three(cluster: LocalCluster) -> None:
        started = time.monotonic()
        for window in ((5, 12), (18, 25), (31, 38)):
            time.sleep(max(0.0, started + rng.uniform(*window) - time.monotonic()))
            victim = rng.choice([w for w in cluster.workers if w.alive])
            victim.wait_processing()  # it consumed before it died
            victim.kill()
            cluster.start_worker().metrics_port()

    assert_all_equal(replay_through_two_workers(cluster, users_log, DRILL_SPEED, kill_three))
    assert len(cluster.workers) == 5 and sum(w.alive for w in cluster.workers) == 2
    for worker in cluster.workers:
        if worker.alive:
            worker.wait_processing(60)
    assert_every_worker_consumed(cluster)


def test_a_redis_restart_mid_replay_loses_nothing(
        cluster: LocalCluster, users_log: Path, redis_url: str) -> None:
    """Redis stops (its append-only file flushed) and comes back while events flow; the
    workers wait for it."""
    def restart_redis(cluster: LocalCluster) -> None:
        time.sleep(15)
        watched = cluster.workers[0]
        assert watched.probe("/readyz")[1]["checks"]["redis"] == "ok"
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(redis_url).shutdown()
        # Not ready while Redis is away, and why; alive (waiting is not a stall).
        status, body = watched.wait_probe("/readyz", "redis", passing=False, timeout_s=10)
        assert status == 503 and "Redis" in body["checks"]["redis"]
        assert watched.probe("/healthz")[0] == 200
        time.sleep(3)
        services("up")
        watched.wait_probe("/readyz", "redis", passing=True)

    try:
        result = replay_through_two_workers(cluster, users_log, DRILL_SPEED, restart_redis)
    finally:  # whatever happened, leave Redis up for the tests after this one
        services("up")
    assert_all_equal(result)
    assert all(w.alive for w in cluster.workers)
    assert_every_worker_consumed(cluster)


def test_a_kafka_restart_mid_replay_loses_nothing(
        cluster: LocalCluster, users_log: Path) -> None:
    """The broker stops and starts again while the producer sends and the workers consume;
    both wait it out (acks=all with idempotence on one side, offsets in Redis on the
    other)."""
    def restart_kafka(cluster: LocalCluster) -> None:
        time.sleep(15)
        watched = cluster.workers[0]
        services("stop", "kafka")
        status, body = watched.wait_probe("/readyz", "kafka", passing=False, timeout_s=10)
        assert status == 503 and "Kafka" in body["checks"]["kafka"]
        time.sleep(3)
        services("up")
        watched.wait_probe("/readyz", "kafka", passing=True)

    try:
        result = replay_through_two_workers(cluster, users_log, DRILL_SPEED, restart_kafka)
    finally:
        services("up")
    assert_all_equal(result)
    assert_every_worker_consumed(cluster)


def test_a_worker_paused_past_its_session_timeout_comes_back_as_a_zombie_that_writes_nothing(
        cluster: LocalCluster, users_log: Path) -> None:
    """SIGSTOP one worker while it catches up on a backlog, for longer than the group's
    session timeout: the other takes all four partitions. On SIGCONT the paused one still
    holds a batch applied in memory and sends it; Redis's offsets refuse it, and it rejoins
    the group."""
    def pause_one(cluster: LocalCluster) -> None:
        paused, other = cluster.workers
        paused.wait_processing()  # busy: batches in memory and on their way to Redis
        paused.signal(signal.SIGSTOP)
        offsets = stored_offsets(cluster)
        time.sleep(20)  # the session timeout is 8 s
        after = stored_offsets(cluster)
        assert all(after[p] > offsets[p] for p in offsets), (
            f"not every partition moved on while a worker was paused: {offsets} -> {after}")
        paused.signal(signal.SIGCONT)

    assert_all_equal(replay_through_two_workers(cluster, users_log, "max", pause_one))
    assert all(w.alive for w in cluster.workers)
    assert_every_worker_consumed(cluster)


def stored_offsets(cluster: LocalCluster) -> dict[int, int]:
    return {p: cluster.store.stored_offset(cluster.topic, p) or 0
            for p in range(cluster.partitions)}


def services(*args: str) -> None:
    subprocess.run([str(SERVICES), *args], check=True, capture_output=True, timeout=120)
