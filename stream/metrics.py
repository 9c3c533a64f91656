"""Prometheus families shared by the processes that judge events (embedded app, workers).

Prequential recall is the pipeline's own figure (:class:`~online_models.metrics.
PrequentialRecall`); every process that runs a pipeline exposes it under the same names, so
one dashboard reads the demo and a fleet of workers alike (sum the counters over workers).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from online_models.metrics import OBJECTIVE_WEIGHTS


def prequential_families(stats: Mapping[str, Any]) -> Iterator[Metric]:
    """``liverec_prequential_{judged,hits,recall}`` per objective from a pipeline's stats
    (``judged_<objective>``, ``hits_<objective>``)."""
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
        n, h = stats.get(f"judged_{objective}", 0), stats.get(f"hits_{objective}", 0)
        judged.add_metric([objective], n)
        hits.add_metric([objective], h)
        if n:
            recall.add_metric([objective], h / n)
    yield from (judged, hits, recall)
