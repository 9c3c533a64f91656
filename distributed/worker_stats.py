"""What a worker counts and times, and the Prometheus collector that reports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.metrics import Histogram, prequential_families

#: The phases of a batch whose time the worker reports.
PHASES = ("load", "apply", "wait", "store", "lists", "compact")


@dataclass
class WorkerStats:
    processed: int = 0
    rejected: int = 0
    skipped: int = 0
    batches: int = 0
    lists_published: int = 0
    model_version: int = 0
    """The version of the re-rankers' snapshot this worker serves (0: none, or no models)."""
    judging: dict[str, int] = field(default_factory=dict)
    """The pipeline's prequential counts (``judged_<objective>``, ``hits_<objective>``) and
    its re-rankers' against their priors (``rerank_*``)."""
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    """Time spent per phase of a batch, summed."""
    offsets: dict[int, int] = field(default_factory=dict)
    assigned: list[int] = field(default_factory=list)
    """The events topic's partitions the group gave this worker."""
    lag: dict[int, int] = field(default_factory=dict)
    """Per partition: messages on the broker not yet applied, as of the last batch."""
    stored_at: float = 0.0
    """When a batch was last stored (monotonic seconds; 0: none yet): progress, for the
    liveness probe."""
    list_delay: Histogram = field(default_factory=Histogram)
    """Seconds from an event's arrival in Kafka to the announcement of its session's lists
    (watched sessions only; the oldest event a list reflects)."""


class WorkerMetrics:
    """Prometheus collector over :class:`WorkerStats`, read at scrape time."""

    def __init__(self, stats: WorkerStats) -> None:
        self.stats = stats

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.stats
        yield CounterMetricFamily("liverec_events_processed", "Events applied by this worker",
                                  value=s.processed)
        yield CounterMetricFamily("liverec_events_rejected",
                                  "Invalid events sent to the dead-letter topic", value=s.rejected)
        yield CounterMetricFamily("liverec_events_skipped",
                                  "Redelivered events already applied", value=s.skipped)
        yield CounterMetricFamily("liverec_worker_batches", "Batches stored in Redis",
                                  value=s.batches)
        yield CounterMetricFamily("liverec_lists_published",
                                  "Watched sessions' lists announced to web nodes",
                                  value=s.lists_published)
        seconds = CounterMetricFamily("liverec_worker_seconds",
                                      "Time spent per phase of a batch", labels=["phase"])
        for phase, value in s.seconds.items():
            seconds.add_metric([phase], value)
        yield seconds
        yield s.list_delay.family(
            "liverec_list_delay_seconds",
            "From an event's arrival in Kafka to the announcement of its session's lists "
            "(watched sessions)")
        yield GaugeMetricFamily("liverec_model_version",
                                "Version of the re-rankers' snapshot served (0: none)",
                                value=s.model_version)
        yield GaugeMetricFamily("liverec_assigned_partitions",
                                "Partitions of the events topic assigned to this worker",
                                value=len(s.assigned))
        yield from prequential_families(s.judging)
        lag = GaugeMetricFamily("liverec_consumer_lag", "Messages not yet applied",
                                labels=["partition"])
        for partition, value in sorted(s.lag.items()):
            lag.add_metric([str(partition)], value)
        yield lag
