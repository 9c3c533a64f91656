"""Sessions like this one (streaming V-SKNN): the definition, its bounds under hostile input,
and that it is the published V-SKNN when nothing is dropped, at a user's scale."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.baselines import SessionKNN
from online_models.similar_sessions import SimilarSessions
from producers.generator import GeneratorConfig, generate_sessions


def reference(sessions: dict[int, list[int]], events: list[int], k: int) -> dict[int, Fraction]:
    """V-SKNN's scores straight from its definition, every session a neighbour, in exact
    arithmetic."""
    n = len(events)
    weight = {aid: Fraction(i, n) for i, aid in enumerate(events, 1)}
    scores: dict[int, Fraction] = {}
    for items in sessions.values():
        shared = set(items) & set(events)
        if not shared:
            continue
        similarity = sum(weight[a] for a in shared)
        step = next(s for s, a in enumerate(reversed(events), 1) if a in shared)
        for aid in set(items):
            scores[aid] = scores.get(aid, Fraction(0)) + similarity / step
    return scores


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 20)), max_size=120),
       st.lists(st.integers(0, 20), min_size=1, max_size=12))
def test_with_nothing_dropped_it_is_the_definition(log: list[tuple[int, int]],
                                                   events: list[int]) -> None:
    index = SimilarSessions(neighbours=1000, per_item=1000, session_items=1000,
                            max_sessions=1000, history=1000)
    sessions: dict[int, list[int]] = {}
    for session, aid in log:
        index.add(session, aid)
        sessions.setdefault(session, []).append(aid)
    expected = reference(sessions, events, 20)
    got = dict(index.top(events, None, 1000))
    assert got.keys() == expected.keys()
    for aid, score in got.items():
        assert score == pytest.approx(float(expected[aid]))


def test_the_session_itself_is_never_its_own_neighbour() -> None:
    index = SimilarSessions()
    for aid in (1, 2, 3):
        index.add(7, aid)
    assert index.top([1, 2, 3], session=7) == []
    index.add(8, 3)
    index.add(8, 4)
    assert [aid for aid, _ in index.top([1, 2, 3], session=7)] == [3, 4]


@given(st.lists(st.tuples(st.integers(0, 10**18), st.integers(-(2**63), 2**63)),
                max_size=400))
def test_bounds_hold_whatever_comes(log: list[tuple[int, int]]) -> None:
    index = SimilarSessions(neighbours=5, per_item=3, session_items=4, max_sessions=10,
                            history=2)
    for session, aid in log:
        index.add(session, aid)
    assert len(index._items) <= 10
    assert all(len(items) <= 4 for items in index._items.values())
    assert all(0 < len(holders) <= 3 for holders in index._holders.values())
    # Every holder entry is of a kept session that still holds the item.
    for aid, holders in index._holders.items():
        assert all(aid in index._items[s] for s in holders)
    if log:
        assert len(index.top([aid for _, aid in log[-5:]], log[-1][0], 20)) <= 20


def test_junk_memory_is_bounded() -> None:
    """One million random junk events into the default bounds: state stops growing."""
    index = SimilarSessions()
    tracemalloc.start()
    try:
        state = 0x2545F4914F6CDD1D
        sizes = []
        for _ in range(4):
            for _event in range(250_000):
                state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
                index.add(state >> 48, state & 0xFFFFFFFF)
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert len(index) <= index.max_sessions
    assert sizes[-1] < 1.1 * sizes[1], sizes  # flat once full
    assert sizes[-1] < 400 * 2**20


@pytest.fixture(scope="module")
def users_log() -> list[tuple[int, int, int]]:
    """A user's log: 5,000 sessions over 62 days, long sessions and popular items."""
    sessions = generate_sessions(GeneratorConfig(sessions=5000, items=3000, seed=5))
    events = sorted((e for _, evs in sessions for e in evs), key=lambda e: e.ts)
    return [(e.session, e.aid, e.ts) for e in events]


def test_it_is_published_vsknn_when_nothing_is_dropped_on_a_users_log(
        users_log: list[tuple[int, int, int]]) -> None:
    """On ≥ 50,000 events, with every session, every item of it and every neighbour kept,
    the streaming index lists what the batch V-SKNN (``evaluation.baselines``) lists."""
    assert len(users_log) >= 50_000
    cut = len(users_log) * 4 // 5
    train, test = users_log[:cut], users_log[cut:]
    trained = {s for s, _, _ in train}
    index = SimilarSessions(neighbours=10**6, per_item=10**6, session_items=10**6,
                            max_sessions=10**6, history=10**6)
    sessions: dict[int, list[int]] = {}
    last: dict[int, int] = {}
    for session, aid, ts in train:
        index.add(session, aid)
        sessions.setdefault(session, []).append(aid)
        last[session] = ts
    knn = SessionKNN(k=10**6, sample_size=10**6)
    knn.fit((items, last[s]) for s, items in sessions.items())
    histories: dict[int, list[int]] = {}
    compared = same = 0
    for session, aid, _ in test:
        history = histories.setdefault(session, [])
        history.append(aid)
        if session in trained or compared >= 2000:
            continue
        scored = index.top(history, session, 40)
        ours = [a for a, _ in scored[:20]]
        theirs = knn.top(history, 20)
        compared += 1
        if ours != theirs:  # only where sums in another order split an exact tie
            score = dict(scored)
            first = next(r for r, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b)
            assert score[ours[first]] == pytest.approx(score.get(theirs[first], -1.0),
                                                       rel=1e-12), (history, ours, theirs)
        same += ours == theirs
    assert compared == 2000
    assert same >= 0.95 * compared
