"""The deployment's figures summed over the workers' reports, as a web node shows them."""

from __future__ import annotations

import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from distributed.figures import current_replay, summed, worker_report
from distributed.memory_store import MemoryStore
from distributed.web_backend import LATEST_ORIGIN_S, origin_of
from producers.replay import ReplayProgress
from stream.metrics import prequential_families


def report(sessions: int, judged: int, hits: int, **more: int) -> bytes:
    counts = {"judged_clicks": judged, "hits_clicks": hits, "judged_carts": judged // 2,
              "hits_carts": hits // 2, "judged_orders": 0, "hits_orders": 0}
    return worker_report(sessions=sessions, lag=more.get("lag", 0), rejected=0,
                         judging=counts)


def test_workers_add_up_and_recall_is_hits_over_judged_of_all() -> None:
    total = summed([report(100, 200, 50, lag=3), report(40, 100, 70, lag=4)])
    assert total["workers"] == 2 and total["sessions"] == 140 and total["lag"] == 7
    assert total["judged_clicks"] == 300 and total["hits_clicks"] == 120
    assert total["recall"] == {"clicks": pytest.approx(0.4), "carts": pytest.approx(0.4),
                               "orders": None}  # nobody judged an order yet: no figure


def test_no_worker_reporting_means_no_figure_not_a_zero() -> None:
    assert summed([]) == {"workers": 0}
    assert current_replay([]) == {"state": "idle"}


def test_reports_that_are_not_reports_are_left_out() -> None:
    hostile = [b"", b"not json", b"[]", b'{"sessions": "many"}', b'{"sessions": 1}',
               b"\xff\xfe", orjson.dumps({"sessions": 1, "lag": None, "rejected": 0})]
    assert summed([*hostile, report(5, 10, 5)])["sessions"] == 5
    assert summed(hostile) == {"workers": 0}
    assert current_replay([b"{}", b'{"state": "running", "total": "x"}', b"1"]) == {
        "state": "idle"}


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6),
                          st.integers(0, 10**6)), max_size=8))
def test_the_sum_is_the_sum_of_the_parts(parts: list[tuple[int, int, int]]) -> None:
    total = summed([report(s, max(j, h), min(j, h)) for s, j, h in parts])
    assert total["workers"] == len(parts)
    if parts:
        assert total["sessions"] == sum(s for s, _, _ in parts)
        judged = sum(max(j, h) for _, j, h in parts)
        recall = total["recall"]["clicks"]
        assert recall is None if judged == 0 else 0.0 <= recall <= 1.0


def test_the_page_shows_the_running_replay_else_the_last_finished() -> None:
    early, late, done = ReplayProgress(), ReplayProgress(), ReplayProgress()
    for progress, sent in ((early, 10), (late, 90)):
        progress.start(100, 0, 1000, None)
        progress.replayed = sent
    done.start(50, 0, 10, 1.0)
    done.finish()
    bodies = [orjson.dumps(p.to_json()) for p in (late, done, early)]
    assert current_replay(bodies)["replayed"] == 10  # the one furthest from done
    assert current_replay(bodies[1:2]) == {**done.to_json()}
    assert current_replay(bodies[1:2])["state"] == "finished"


def test_a_web_node_reads_the_figures_of_the_live_workers_only() -> None:
    store = MemoryStore("p-")
    now = int(time.time() * 1000)
    store.report("worker", "a:1", report(3, 4, 2), now + 6000)
    store.report("worker", "b:2", report(5, 4, 2), now - 1)  # stopped reporting
    assert summed(store.reports("worker", now).values())["sessions"] == 3


def test_an_announcement_times_the_push_from_its_arrival_in_kafka() -> None:
    before = time.perf_counter()
    origin = origin_of(int(time.time() * 1000) - 250)
    assert before - 0.3 < origin < before - 0.2
    assert origin_of(None) == 0.0 and origin_of("soon") == 0.0 and origin_of(-5) == 0.0
    assert origin_of(True) == 0.0
    ancient = origin_of(1)  # a clock far behind counts as at most an hour
    assert time.perf_counter() - ancient == pytest.approx(LATEST_ORIGIN_S, abs=1.0)
    future = origin_of(int(time.time() * 1000) + 60_000)  # a clock ahead: no negative age
    assert future == pytest.approx(time.perf_counter(), abs=0.05)


def test_prometheus_shows_only_the_objectives_measured() -> None:
    families = {f.name: f for f in prequential_families({"judged_clicks": 4, "hits_clicks": 1})}
    assert [s.labels["objective"] for s in families["liverec_prequential_judged"].samples] == [
        "clicks"]
    assert not any(f.samples for f in prequential_families({}))
