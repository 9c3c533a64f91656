"""The shared store's contract, read by read: sessions, offsets over several partitions,
popularity, live sessions, watches and lists, models, clearing, and hostile reads answer the
same from the memory store and from Redis (the ``store`` fixture runs each test on both)."""

from __future__ import annotations

import random
import time
from typing import cast

import pytest

from distributed.memory_store import MemoryStore
from distributed.store import RedisStore
from distributed.store_api import WATCH_TTL_MS, OffsetConflict, SharedStore
from online_models.covisitation import DAY_MS
from online_models.popularity import KNOWN
from online_models.rows import CellJournal, journal_add
from stream.events import Event
from stream.pipeline import PipelineConfig, SessionPipeline

TOPIC = "events"


def test_sessions_keep_their_window_and_their_runs_appended_or_replaced(
        store: SharedStore) -> None:
    store.apply([], {(TOPIC, 0): (0, 1)}, {1: (b"w1", b"ab", False), 2: b"whole"})
    store.apply([], {(TOPIC, 0): (1, 2)}, {1: (b"w2", b"cd", False)})
    assert store.session_states([1, 2, 3]) == {1: (b"w2", b"abcd"), 2: (b"whole", None)}
    store.apply([], {(TOPIC, 0): (2, 3)}, {1: (b"w3", b"xy", True), 2: (b"w", b"", False)})
    assert store.session_states([1, 2]) == {1: (b"w3", b"xy"), 2: (b"w", None)}
    assert store.sessions([2, 1, 9]) == {2: b"w", 1: b"w3"}
    assert store.session_states([]) == {} and store.sessions([]) == {}


def test_sessions_expire_after_their_ttl_without_a_change(store: SharedStore) -> None:
    if isinstance(store, RedisStore):
        store.session_ttl_ms = 300
    else:
        cast(MemoryStore, store).session_ttl_ms = 300
    store.apply([], {(TOPIC, 0): (0, 1)}, {1: (b"w", b"r", False), 2: b"x"})
    time.sleep(0.15)
    store.apply([], {(TOPIC, 0): (1, 2)}, {2: b"y"})  # a change: 2 lives on
    time.sleep(0.25)
    assert store.session_states([1, 2]) == {2: (b"y", None)}
    assert store.stored_lists(1) == (None, None)


def test_a_batch_over_several_partitions_is_applied_whole_or_not_at_all(
        store: SharedStore) -> None:
    journal = CellJournal()
    journal_add(journal.buys, 1, 2, 5)
    assert store.apply(journal, {(TOPIC, 0): (0, 3), (TOPIC, 1): (0, 2)}, events=5)
    # Partition 1 has moved past 0..1: a batch starting there again is refused whole, even
    # though partition 2 is new.
    assert not store.apply(journal, {(TOPIC, 2): (0, 4), (TOPIC, 1): (0, 2)}, events=6)
    with pytest.raises(OffsetConflict, match=r"events\[0\]: batch covers 4\.\.4"):
        store.apply(journal, {(TOPIC, 0): (4, 5)})
    assert store.row("buy2buy", 1) == {2: 5}
    assert store.stored_offset(TOPIC, 2) is None and store.stored_offset(TOPIC, 1) == 2
    assert store.events() == 5


def test_popularity_keeps_two_epochs_of_each_clock_as_the_pipeline_does(
        store: SharedStore) -> None:
    """Events over 30 days in batches, some late: the store's top lists and scores are the
    in-memory popularity's, old epochs forgotten."""
    rng = random.Random(7)
    day = DAY_MS
    events = sorted((Event(rng.randrange(50), rng.randrange(40), rng.randrange(30 * day),
                           rng.randrange(3)) for _ in range(3000)), key=lambda e: e.ts)
    for i in range(len(events) - 1, 0, -37):  # late events: swapped with their neighbour
        events[i], events[i - 1] = events[i - 1], events[i]
    pipeline = SessionPipeline(PipelineConfig(session_ttl_ms=10_000 * DAY_MS))
    pipeline.popularity.take_journal()
    for i in range(0, len(events), 100):
        pipeline.apply(events[i:i + 100])
        assert store.apply([], {(TOPIC, 0): (i, i + 100)},
                           popularity=pipeline.popularity.take_journal())
    aids = list(range(40))
    for kind in (*range(4), KNOWN):
        assert store.popular(kind, 10) == pipeline.popularity.top(kind, 10)
    for kind, scores in store.popularity_scores((0, 1, 2, 3), aids).items():
        assert scores == [pipeline.popularity.score(kind, a) for a in aids]
    assert store.popular(0, 100) == pipeline.popularity.top(0, 100)  # past the heads


def test_live_sessions_are_the_latest_thousand_most_recent_first(store: SharedStore) -> None:
    live = {s: 1_000 + s % 700 for s in range(1200)}  # ties: the score, then the id as text
    store.apply([], {(TOPIC, 0): (0, 1)}, live=live)
    assert store.latest_event_ts() == 1_699
    expected = sorted(live, key=lambda s: (live[s], str(s)), reverse=True)
    assert store.live_sessions(1000) == expected[:1000]
    assert store.live_sessions(5000) == expected[:1000]  # the rest were dropped
    store.apply([], {(TOPIC, 0): (1, 2)}, live={3: 5_000})
    assert store.live_sessions(2) == [3, expected[0]]


def test_watches_lapse_and_lists_are_stored_and_announced(store: SharedStore) -> None:
    store.watch([1, 2], now_ms=10_000)
    assert store.watched([1, 2, 3], 10_000 + WATCH_TTL_MS) == [1, 2]
    assert store.watched([1, 2], 10_001 + WATCH_TTL_MS) == []
    store.watch([2], now_ms=20_000)
    assert store.forget_lapsed_watches(10_001 + WATCH_TTL_MS) == 1
    assert store.watched([1, 2], 10_001 + WATCH_TTL_MS) == [2]
    store.apply([], {(TOPIC, 0): (0, 1)}, {2: b"state"})
    store.publish_lists({2: b'{"clicks": [1]}'})
    assert store.stored_lists(2) == (b'{"clicks": [1]}', b"state")
    assert store.stored_lists(5) == (None, None)


def test_models_are_versioned_and_the_secret_is_the_first_one_stored(
        store: SharedStore) -> None:
    assert store.model("m") is None and store.model_version("m") == 0
    assert store.save_model("m", b"one") == 1 and store.save_model("m", b"two") == 2
    assert store.model("m") == (2, b"two") and store.model_version("m") == 2
    assert store.shared_secret("first") == "first" == store.shared_secret("second")


def test_reports_last_until_their_time_and_are_kept_apart_by_kind_and_name(
        store: SharedStore) -> None:
    store.report("worker", "host-a:1", b'{"events": 5}', until_ms=10_000)
    store.report("worker", "host-b:2", b'{"events": 7}', until_ms=20_000)
    store.report("replay", "host-a:9", b"{}", until_ms=20_000)
    assert store.reports("worker", 9_999) == {"host-a:1": b'{"events": 5}',
                                              "host-b:2": b'{"events": 7}'}
    assert store.reports("worker", 10_000) == {"host-b:2": b'{"events": 7}'}  # lapsed
    store.report("worker", "host-a:1", b'{"events": 6}', until_ms=30_000)  # back again
    assert store.reports("worker", 25_000) == {"host-a:1": b'{"events": 6}'}
    assert store.reports("replay", 0) == {"host-a:9": b"{}"} and store.reports("x", 0) == {}
    store.report("worker", "odd:name:with:colons", b"a:b:c", until_ms=40_000)
    assert store.reports("worker", 35_000) == {"odd:name:with:colons": b"a:b:c"}
    assert store.clear() > 0 and store.reports("worker", 0) == {}


def test_clear_forgets_everything(store: SharedStore) -> None:
    journal = CellJournal()
    journal_add(journal.buys, 1, 2, 5)
    store.apply(journal, {(TOPIC, 0): (0, 1)}, {1: b"s"}, {(0, 0): {1: 3}}, {1: 9}, 1)
    store.save_model("m", b"x")
    assert store.clear() > 0
    assert store.matrix("buy2buy") == {} and store.stored_offset(TOPIC, 0) is None
    assert store.sessions([1]) == {} and store.popular(0, 5) == [] and store.events() == 0
    assert store.model("m") is None and store.live_sessions(5) == []
    assert store.latest_event_ts() is None


def test_hostile_reads_answer_empty_or_refuse_by_name(store: SharedStore) -> None:
    assert store.rows([]) == {} and store.row("clicks", -5) == {}
    with pytest.raises(KeyError, match="unknown matrix 'views'"):
        store.rows([("views", 1)])
    with pytest.raises(KeyError, match="unknown matrix"):
        store.matrix("nope")
    assert store.popularity_scores((0,), []) == {0: []}
    assert store.popular(0, 20) == [] and store.popular(KNOWN, 20) == []
    store.apply([], {(TOPIC, 0): (0, 1)}, live={1: 5, 2: 6})
    assert store.watched([], 0) == [] and store.live_sessions(0) == []
    assert store.live_sessions(-3) == []
    store.publish_lists({})
