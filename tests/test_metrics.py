"""Ranking metrics on hand-computed cases, edge cases included; the delay histogram the
processes expose."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from online_models.metrics import NextItemScores, OttoScores, PrequentialRecall, first_rank


def test_next_item_hit_rate_mrr_and_ndcg_by_hand() -> None:
    scores = NextItemScores()
    scores.add([7, 8, 9], 7)       # rank 1: rr 1, gain 1
    scores.add([7, 8, 9], 9)       # rank 3: rr 1/3, gain 1/log2(4) = 0.5
    scores.add([7, 8, 9], 4)       # miss
    scores.add([], 4)              # an empty list is a miss, not an error
    result = scores.as_dict()
    assert result["positions"] == 4
    assert result["HR@20"] == pytest.approx(2 / 4)
    assert result["MRR@20"] == pytest.approx((1 + 1 / 3) / 4)
    assert result["NDCG@20"] == pytest.approx((1 + 0.5) / 4)


def test_a_duplicate_in_a_list_counts_once_at_its_first_rank() -> None:
    assert first_rank([5, 5, 5, 6], 6) == 1
    scores = NextItemScores(k=2)
    scores.add([5, 5, 5, 6], 6)    # distinct list is [5, 6]: a hit at rank 2 even at k=2
    assert scores.as_dict()["MRR@2"] == pytest.approx(0.5)


def test_only_the_first_k_distinct_predictions_count() -> None:
    assert first_rank(list(range(30)), 20) is None
    assert first_rank(list(range(30)), 19) == 19


def test_otto_recall_uses_min_of_k_and_truth_size_and_skips_empty_truth() -> None:
    scores = OttoScores()
    # session 1: click hit; carts 1 of 2; orders 2 of 3 truth
    scores.add({"clicks": [1, 2], "carts": [3, 9], "orders": [5, 6, 9]},
               {"clicks": [2], "carts": [3, 4], "orders": [5, 6, 7]})
    # session 2: no click label (skipped for clicks), fewer than 20 predictions, a miss
    scores.add({"clicks": [1], "carts": [], "orders": [8]},
               {"clicks": [], "carts": [10], "orders": [11]})
    result = scores.as_dict()
    assert result["recall_clicks@20"] == pytest.approx(1 / 1)
    assert result["recall_carts@20"] == pytest.approx(1 / 3)
    assert result["recall_orders@20"] == pytest.approx(2 / 4)
    assert result["score"] == pytest.approx(0.1 * 1 + 0.3 / 3 + 0.6 * 0.5)
    assert result["sessions"] == 2


def test_otto_truth_larger_than_k_is_capped_at_k() -> None:
    scores = OttoScores()
    truth = list(range(30))
    scores.add({"clicks": [], "carts": list(range(20)), "orders": []},
               {"clicks": [], "carts": truth, "orders": []})
    assert scores.as_dict()["recall_carts@20"] == pytest.approx(1.0)


def test_otto_ndcg_by_hand() -> None:
    scores = OttoScores()
    scores.add({"clicks": [], "carts": [9, 3], "orders": []},
               {"clicks": [], "carts": [3], "orders": []})
    # carts: hit at rank 2 → (1/log2 3) / 1; weighted by 0.3 in the combined NDCG
    assert scores.as_dict()["NDCG@20"] == pytest.approx(0.3 / math.log2(3))


def test_an_unknown_objective_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown objective"):
        OttoScores().add({}, {"views": [1]})


def test_prequential_recall_counts_per_event_type() -> None:
    recall = PrequentialRecall()
    lists = ([1, 2], [3], [4])
    assert recall.add(0, lists, 2)
    assert not recall.add(1, lists, 2)
    assert recall.recall() == {"clicks": 1.0, "carts": 0.0, "orders": None}


@given(st.lists(st.integers(0, 30), max_size=40), st.integers(0, 30))
def test_metrics_stay_in_range_and_agree_with_first_rank(predictions: list[int],
                                                         target: int) -> None:
    scores = NextItemScores()
    rank = scores.add(predictions, target)
    result = scores.as_dict()
    assert 0 <= result["MRR@20"] <= result["NDCG@20"] <= result["HR@20"] <= 1
    assert (rank is not None) == (target in list(dict.fromkeys(predictions))[:20])


def test_the_delay_histogram_exposes_cumulative_buckets_bounds_included() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from stream.metrics import Histogram

    histogram = Histogram((0.01, 0.05))
    for value in (0.004, 0.01, 0.02, 0.05, 0.3):  # a value on a bound is in that bucket
        histogram.observe(value)

    class Collector:
        def collect(self):  # type: ignore[no-untyped-def]
            yield histogram.family("liverec_test_delay_seconds", "a test histogram")

    registry = CollectorRegistry()
    registry.register(Collector())
    text = generate_latest(registry).decode()
    assert 'liverec_test_delay_seconds_bucket{le="0.01"} 2.0' in text
    assert 'liverec_test_delay_seconds_bucket{le="0.05"} 4.0' in text
    assert 'liverec_test_delay_seconds_bucket{le="+Inf"} 5.0' in text
    assert "liverec_test_delay_seconds_count 5.0" in text
    assert histogram.count == 5 and histogram.sum == pytest.approx(0.384)
