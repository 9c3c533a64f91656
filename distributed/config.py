"""A worker's tunables in one place. ``liverec worker`` fills them from
:class:`~liverec.settings.Settings` (``LIVEREC_*``), where each is documented for operators;
the why of each default is in ``docs/production.md`` and ``docs/benchmarks.md``."""

from __future__ import annotations

from dataclasses import dataclass

#: A worker's most events per batch unless ``LIVEREC_MAX_BATCH`` says otherwise.
WORKER_MAX_BATCH = 8000


@dataclass(frozen=True)
class WorkerConfig:
    broker: str = "kafka://127.0.0.1:9092"
    """The Kafka bus, ``kafka://host:port``."""
    store: str = "redis://127.0.0.1:6379/0"
    """The shared store, ``redis://host:port/db``."""
    topic_prefix: str = ""
    """Prefix of the topics and of the store's keys."""
    app_id: str = "liverec"
    """The workers' consumer group."""
    partitions: int = 4
    """Partitions of the events topic."""
    max_batch: int = WORKER_MAX_BATCH
    """Most events per batch (a batch that big forms only when events piled up)."""
    batch_window_s: float = 0.01
    """Wait this long between fetches while records come in fast (see ``linger_records``)."""
    linger_records: int = 2
    """Wait ``batch_window_s`` between fetches while it would gather at least this many
    records at the rate of the last fetch's; below that, fetch at once."""
    fetch_max_wait_ms: int = 100
    """Longest Kafka may hold a fetch waiting for more data."""
    view_max_age_s: float = 30.0
    """How stale a worker's view of what other workers stored may be: the co-visitation rows
    its pushed lists read, the popular fill of those lists and the re-rankers' learning
    features are re-read from Redis after this long (its own batches keep the rows current)."""
    model_sync_s: float = 5.0
    """Mix this worker's re-rankers with the others' and save the snapshot this often."""
    commit_every_s: float = 1.0
    """Commit to Kafka the offsets Redis has this often."""
    watch_sweep_s: float = 10.0
    """Forget watches no web node renewed this often."""
    kafka_session_timeout_s: float = 8.0
    """A worker silent this long is dropped from the group and its partitions reassigned."""
    redis_timeout_s: float = 10.0
    """Longest one Redis call may take before it counts as Redis being away."""
    redis_patience_s: float = 300.0
    """How long a worker waits for Redis to come back before it exits (Kafka then gives its
    partitions to another worker)."""
    report_every_s: float = 2.0
    """Report this worker's figures to the web nodes (through the store) this often."""
    compact_min_bytes: int = 16_384
    """Row logs shorter than this are never compacted: summing a short log on read costs
    less than a compaction's two round trips."""
