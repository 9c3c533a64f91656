"""The session pipeline: lists for every session, versions, bounded state."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.covisitation import DAY_MS, CovisConfig
from online_models.popularity import KNOWN
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


def _merged_reference(events: list[tuple[int, int, int]], half_life: int,
                      kind: int) -> list[int]:
    """Popularity's ranking by its definition, from scratch."""
    scores = _reference_scores(events, half_life, kind)
    return sorted(scores, key=lambda a: (-scores[a], a))


def _reference_scores(events: list[tuple[int, int, int]], half_life: int,
                      kind: int) -> dict[int, int]:
    """Popularity scores by their definition, from scratch: per-epoch integer sums, merged."""
    from online_models.popularity import ALL_TYPES, EPOCH_HALF_LIVES, Popularity

    weigh = Popularity(half_life).weight
    sums: dict[tuple[int, int], int] = {}
    latest = max(weigh(ts)[0] for _, ts, _ in events)
    for aid, ts, etype in events:
        epoch, weight = weigh(ts)
        if kind in (etype, ALL_TYPES):
            sums[(epoch, aid)] = sums.get((epoch, aid), 0) + weight
    scores: dict[int, int] = {}
    for (epoch, aid), value in sums.items():
        if epoch == latest:
            scores[aid] = scores.get(aid, 0) + value
        elif epoch == latest - 1:
            scores[aid] = scores.get(aid, 0) + (value >> EPOCH_HALF_LIVES)
    return scores


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 40_000), st.integers(0, 2)),
                min_size=1, max_size=400),
       st.integers(2, 30), st.randoms(use_true_random=False))
def test_popularity_top_is_exact_in_any_arrival_order(
        events: list[tuple[int, int, int]], board: int, rng: Any) -> None:
    """The top list equals a from-scratch ranking by the definition, across epochs, with
    small boards (the threshold algorithm must look past them) and in any arrival order:
    sums of integers do not depend on it."""
    from online_models.popularity import Popularity

    half_life = 1000  # epochs of 16 s: the timestamps span two or three of them
    for order in (sorted(events, key=lambda e: e[1]), rng.sample(events, len(events))):
        pop = Popularity(half_life, board_size=board, cached_top=4)
        for i, (aid, ts, etype) in enumerate(order):
            pop.update(aid, ts, etype)
            if i % 7 == 0:  # the cached list, kept up incrementally, is exact at every read
                assert pop.top(etype, 3) == _merged_reference(order[:i + 1], half_life,
                                                              etype)[:3]
        for kind in range(4):
            assert pop.top(kind, 10) == _merged_reference(events, half_life, kind)[:10]
            scores = _reference_scores(events, half_life, kind)
            assert [pop.score(kind, aid) for aid in range(61)] == [
                scores.get(aid, 0) for aid in range(61)]
        latest = max(pop.weight(ts)[0] for _, ts, _ in events)
        # KNOWN: plain event counts of the latest two known epochs; older items are forgotten
        known = [ts // pop.known_epoch_ms for _, ts, _ in events]
        counts = Counter(aid for (aid, _, _), epoch in zip(events, known, strict=True)
                         if epoch >= max(known) - 1)
        assert pop.top(KNOWN, 10) == sorted(counts, key=lambda a: (-counts[a], a))[:10]
        assert pop.items() == len({aid for aid, ts, _ in events
                                   if pop.weight(ts)[0] >= latest - 1})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 40_000), st.integers(0, 2)),
                min_size=1, max_size=200), st.randoms(use_true_random=False))
def test_popularity_journal_only_journals_what_the_full_model_does(
        events: list[tuple[int, int, int]], rng: Any) -> None:
    """A worker's popularity keeps no counts of its own (Redis holds them): its journal is
    the full model's, epoch by epoch, in any arrival order (stale events dropped alike)."""
    from online_models.popularity import Popularity

    full, lean = Popularity(1000), Popularity(1000, keep_counts=False)
    full.take_journal()
    for aid, ts, etype in rng.sample(events, len(events)):
        full.update(aid, ts, etype)
        lean.update(aid, ts, etype)
    assert lean.take_journal() == full.take_journal()
    assert lean.top(0, 5) == [] and lean.score(0, events[0][0]) == 0


def test_popularity_cached_top_list_stays_exact_between_reads() -> None:
    """The top list is cached and kept up per update (a member grows, an item enters): read
    every few updates, it always equals the from-scratch ranking. Random logs rather than
    hypothesis's, which are mostly too small to make a cached list go stale."""
    import random

    from online_models.popularity import Popularity

    rng = random.Random(11)
    for _ in range(60):
        log = sorted(((rng.randint(0, 60), rng.randint(0, 40_000), rng.randint(0, 2))
                      for _ in range(300)), key=lambda e: e[1])
        pop = Popularity(1000, board_size=10, cached_top=4)
        for i, (aid, ts, etype) in enumerate(log):
            pop.update(aid, ts, etype)
            if i % 7 == 0:
                assert pop.top(etype, 3) == _merged_reference(log[:i + 1], 1000, etype)[:3]


def test_popularity_leader_board_equals_a_full_sort() -> None:
    """A long skewed stream: the incremental top list equals a full sort of every score."""
    import random

    from online_models.popularity import Popularity

    rng = random.Random(3)
    pop = Popularity(half_life_ms=50_000, board_size=30)
    events = [(int(rng.paretovariate(0.8)) % 3000, i * 100, rng.choice((0, 0, 0, 1, 2)))
              for i in range(20_000)]
    for aid, ts, etype in events:
        pop.update(aid, ts, etype)
    assert pop.epoch >= 2  # the stream crossed epochs
    for etype in range(4):
        assert pop.top(etype, 25) == _merged_reference(events, 50_000, etype)[:25]


def test_popularity_epochs_sit_on_a_fixed_grid_and_old_ones_go() -> None:
    """Months of events at a one-second half-life: counts stay small integers, ranks stay
    right, and the epoch of an event does not depend on which event came first."""
    from online_models.popularity import EPOCH_HALF_LIVES, WEIGHT_ONE, Popularity

    pop = Popularity(half_life_ms=1000)
    for i in range(2000):
        pop.update(1, 5_000 * i, 0)  # item 1: an old favourite
    pop.update(2, 5_000 * 2000, 0)   # item 2: one click, now
    assert pop.top(0, 2) == [2, 1]
    assert set(pop.counts) == {pop.epoch - 1, pop.epoch}  # older epochs were dropped
    assert all(v < WEIGHT_ONE << (EPOCH_HALF_LIVES + 8)
               for tables in pop.counts.values() for v in tables[0].values())
    late = Popularity(half_life_ms=1000)
    late.update(3, 123_456, 0)
    assert late.weight(5_000 * 2000) == pop.weight(5_000 * 2000)


def test_a_session_idle_past_its_lifetime_starts_afresh_whether_swept_or_not() -> None:
    """The rule does not depend on when expiry sweeps run (or on a worker reloading an old
    state from the shared store): same events, same lists."""
    config = PipelineConfig(session_ttl_ms=14 * DAY_MS)
    events = [Event(1, 10, T0, CLICKS), Event(1, 11, T0 + 1, CLICKS),
              Event(2, 50, T0 + 20 * DAY_MS, CLICKS), Event(1, 12, T0 + 20 * DAY_MS, CLICKS)]
    swept, unswept = SessionPipeline(config), SessionPipeline(config)
    swept.apply(events[:3])
    swept.sessions.expire()
    assert 1 not in swept.sessions
    swept.apply(events[3:])
    unswept.apply(events)
    for pipeline in (swept, unswept):
        recs = pipeline.recommendations(1)
        assert recs.clicks[0] == 12 and 10 not in recs.clicks[:2]
    assert unswept.recommendations(1).version == 3  # versions keep growing
