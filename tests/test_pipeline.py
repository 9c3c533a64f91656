"""The session pipeline: lists for every session, versions, bounded state."""

from __future__ import annotations

from online_models.covisitation import DAY_MS, CovisConfig
from stream.events import CARTS, CLICKS, ORDERS, Event
from stream.pipeline import PipelineConfig, SessionPipeline

T0 = 1_659_304_800_000


def busy_pipeline(sessions: int = 60, items: int = 50) -> SessionPipeline:
    """Sessions browsing groups of related items, some carting and ordering."""
    pipeline = SessionPipeline()
    events = []
    for s in range(sessions):
        base = (s % 5) * 10
        for i in range(8):
            etype = CARTS if i == 5 else ORDERS if i == 7 and s % 2 else CLICKS
            events.append(Event(s, (base + (s + i) % 10) % items, T0 + s * 60_000 + i * 1000,
                                etype))
    events.sort(key=lambda e: e.ts)
    pipeline.apply(events)
    return pipeline


def test_a_new_session_gets_full_lists_of_popular_items() -> None:
    pipeline = busy_pipeline()
    recs = pipeline.recommendations(10**12)
    for name in ("clicks", "carts", "orders"):
        assert len(getattr(recs, name)) == 20
        assert len(set(getattr(recs, name))) == 20
    assert recs.version == 0 and recs.event_ts is None


def test_an_unknown_item_still_gets_full_lists_starting_with_itself() -> None:
    pipeline = busy_pipeline()
    pipeline.apply([Event(999, 123_456, T0 + 10**7, CLICKS)])
    recs = pipeline.recommendations(999)
    assert recs.clicks[0] == 123_456
    assert all(len(lst) == 20 for lst in (recs.clicks, recs.carts, recs.orders))
    assert recs.version == 1 and recs.event_ts == T0 + 10**7


def test_lists_follow_co_visitation_of_the_session_items() -> None:
    """A session that clicks item 3 is recommended the items that co-occur with 3."""
    pipeline = busy_pipeline()
    pipeline.apply([Event(5000, 3, T0 + 10**7, CLICKS)])
    recs = pipeline.recommendations(5000)
    neighbours = {b for b, _ in pipeline.covis.top("clicks", 3, 20)}
    assert neighbours and set(recs.clicks[1:len(neighbours) + 1]) <= neighbours | {3}


def test_version_counts_the_sessions_events() -> None:
    pipeline = SessionPipeline()
    pipeline.apply([Event(1, 1, T0, CLICKS), Event(2, 1, T0 + 1, CLICKS)])
    pipeline.apply([Event(1, 2, T0 + 2, CARTS)])
    assert pipeline.recommendations(1).version == 2
    assert pipeline.recommendations(2).version == 1


def test_apply_returns_the_touched_sessions() -> None:
    pipeline = SessionPipeline()
    assert pipeline.apply([Event(1, 1, T0, 0), Event(7, 2, T0, 0), Event(1, 3, T0, 0)]) == {1, 7}


def test_idle_sessions_are_forgotten_after_their_ttl() -> None:
    """Memory is bounded: a session idle past the TTL (event time) is dropped by the sweep."""
    config = PipelineConfig(covis=CovisConfig(), session_ttl_ms=14 * DAY_MS)
    pipeline = SessionPipeline(config)
    pipeline.apply([Event(s, s % 7, T0 + s, CLICKS) for s in range(100)])
    late = T0 + 15 * DAY_MS
    pipeline.apply([Event(10_000 + i, 1, late + i, CLICKS) for i in range(10_000)])
    assert 5 not in pipeline.sessions
    assert pipeline.sessions_expired >= 100
    assert pipeline.recommendations(5).version == 0


def test_open_runs_are_freed_after_a_day_idle_but_history_is_kept() -> None:
    pipeline = SessionPipeline()
    pipeline.apply([Event(1, 1, T0, CLICKS), Event(1, 2, T0 + 1, CLICKS)])
    state = pipeline.sessions.get(1)
    assert state is not None and state.runs
    pipeline.apply([Event(2, 3, T0 + 2 * DAY_MS, CLICKS)])
    pipeline.sessions.expire()
    assert not state.runs and len(state.recent) == 2


def test_popularity_leader_board_equals_a_full_sort() -> None:
    """The incremental top list is exact: the same as sorting every item's score."""
    import random

    from online_models.popularity import Popularity

    rng = random.Random(3)
    pop = Popularity(half_life_ms=50_000, board_size=30)
    for i in range(20_000):
        pop.update(int(rng.paretovariate(0.8)) % 3000, i * 100, rng.choice((0, 0, 0, 1, 2)))
    for etype in range(4):
        scores = pop.scores[etype]
        expected = sorted(scores, key=lambda a: (-scores[a], a))[:25]
        assert pop.top(etype, 25) == expected


def test_popularity_top_stays_exact_when_read_between_updates() -> None:
    """The cached top list is dropped exactly when an update could change it."""
    import random

    from online_models.popularity import Popularity

    rng = random.Random(5)
    pop = Popularity(half_life_ms=20_000, board_size=300)
    for i in range(30_000):
        pop.update(int(rng.paretovariate(0.7)) % 5000, i * 10, 0)
        if i % 97 == 0:
            scores = pop.scores[0]
            assert pop.top(0, 40) == sorted(scores, key=lambda a: (-scores[a], a))[:40]


def test_popularity_renormalises_on_a_fixed_grid_without_overflow() -> None:
    """Months of events at a one-second half-life: scores stay finite, ranks stay right, and
    the landmark lies on the same grid whichever event came first."""
    import math

    from online_models.popularity import GRID_HALF_LIVES, Popularity

    pop = Popularity(half_life_ms=1000)
    for i in range(2000):
        pop.update(1, 5_000 * i, 0)  # item 1: an old favourite
    pop.update(2, 5_000 * 2000, 0)   # item 2: one click, now
    assert all(math.isfinite(s) for s in pop.scores[0].values())
    assert pop.top(0, 2) == [2, 1]
    assert pop.landmark is not None and pop.landmark % (GRID_HALF_LIVES * 1000) == 0
