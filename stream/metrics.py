"""Prometheus families shared by the processes that judge events (embedded app, workers), and
the events/s figure every node shows.

Prequential recall is the pipeline's own figure (:class:`~online_models.metrics.
PrequentialRecall`); every process that runs a pipeline exposes it under the same names, so
one dashboard reads the demo and a fleet of workers alike (sum the counters over workers).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from online_models.metrics import OBJECTIVE_WEIGHTS


def prequential_families(stats: Mapping[str, Any]) -> Iterator[Metric]:
    """``liverec_prequential_{judged,hits,recall}`` per objective from a pipeline's stats
    (``judged_<objective>``, ``hits_<objective>``), and with re-rankers
    ``liverec_rerank_{judged,hits,serving_model}`` (``rerank_*`` of :meth:`Reranker.stats`)."""
    judged = CounterMetricFamily("liverec_prequential_judged",
                                 "Events judged against the lists live just before them",
                                 labels=["objective"])
    hits = CounterMetricFamily("liverec_prequential_hits",
                               "Judged events whose aid was in their type's top 20",
                               labels=["objective"])
    recall = GaugeMetricFamily("liverec_prequential_recall",
                               "Prequential recall@20 per objective (hits / judged)",
                               labels=["objective"])
    for objective in OBJECTIVE_WEIGHTS:
        if f"judged_{objective}" not in stats:
            continue  # not measured here: no sample, rather than a 0 that reads as one
        n, h = stats[f"judged_{objective}"], stats.get(f"hits_{objective}", 0)
        judged.add_metric([objective], n)
        hits.add_metric([objective], h)
        if n:
            recall.add_metric([objective], h / n)
    yield from (judged, hits, recall)
    if "rerank_judged_clicks" in stats:
        yield from _rerank_families(stats)


def _rerank_families(stats: Mapping[str, Any]) -> Iterator[Metric]:
    """Each re-ranker against its own prior on the events it learned from (both judged on the
    same shortlist before learning), and which of the two serves."""
    judged = CounterMetricFamily("liverec_rerank_judged",
                                 "Learned events judged before learning, per objective",
                                 labels=["objective"])
    hits = CounterMetricFamily("liverec_rerank_hits",
                               "Of those, events whose aid was in the top 20 of the prior or "
                               "of the model's snapshot", labels=["objective", "ranking"])
    serving = GaugeMetricFamily("liverec_rerank_serving_model",
                                "1 while the model's snapshot serves, 0 while its prior does",
                                labels=["objective"])
    for objective in OBJECTIVE_WEIGHTS:
        judged.add_metric([objective], stats.get(f"rerank_judged_{objective}", 0))
        hits.add_metric([objective, "prior"], stats.get(f"rerank_prior_hits_{objective}", 0))
        hits.add_metric([objective, "model"], stats.get(f"rerank_model_hits_{objective}", 0))
        serving.add_metric([objective], stats.get(f"rerank_serving_model_{objective}", 0))
    yield from (judged, hits, serving)
    if "sequence_model_items" in stats:
        yield GaugeMetricFamily("liverec_sequence_model_items",
                                "Items of the sequence model the re-rankers read",
                                value=stats["sequence_model_items"])
        yield CounterMetricFamily("liverec_sequence_model_swaps",
                                  "Sequence models swapped in since start",
                                  value=stats["sequence_model_swaps"])
        yield CounterMetricFamily("liverec_sequence_model_failed_loads",
                                  "Changed model files that did not load (the old one serves)",
                                  value=stats["sequence_model_failed_loads"])


#: Buckets (seconds) of how long lists take to follow events: fine around the target (tens
#: of milliseconds), coarse up to the seconds an overloaded worker falls behind.
DELAY_BUCKETS_S = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)


class Histogram:
    """Observations counted into fixed buckets, exposed by a collector at scrape time.

    It lives in its owner's stats, like the counters beside it, which collectors read when
    scraped: one event loop writes them, so unlike ``prometheus_client.Histogram`` it takes
    no lock per observation.
    """

    def __init__(self, bounds: tuple[float, ...] = DELAY_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        """Per bucket, not cumulative; the last one is above every bound."""
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.sum)


class RateMeter:
    """Events per second over about the last five seconds, from a growing counter read at
    whatever moments someone asks (the page polls ``/stats``)."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=64)

    def rate(self, count: int) -> float:
        now = time.monotonic()
        samples = self._samples
        samples.append((now, count))
        while len(samples) > 2 and now - samples[1][0] > 5.0:
            samples.popleft()
        t0, c0 = samples[0]
        return round((count - c0) / (now - t0), 1) if now - t0 > 0.2 else 0.0
