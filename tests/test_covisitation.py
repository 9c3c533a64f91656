"""The core correctness property: incremental co-visitation equals the batch recomputation."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.covisitation import (
    DAY_MS,
    CovisConfig,
    CoVisitation,
)
from online_models.covisitation_batch import batch_covisitation
from online_models.rows import export_rows
from online_models.sessions import SessionState
from producers.generator import GeneratorConfig, generate_sessions

Log = list[tuple[int, int, int, int]]


def run_incremental(log: Log, config: CovisConfig) -> CoVisitation:
    cv = CoVisitation(config)
    states = {}
    for session, aid, ts, etype in log:
        state = states.get(session)
        if state is None:
            state = states[session] = SessionState.empty(config.window)
        cv.update(state, aid, ts, etype)
    return cv


def matrices(cv: CoVisitation) -> tuple[dict, dict, dict]:
    return cv.matrix("clicks"), cv.matrix("carts_orders"), cv.matrix("buy2buy")


@st.composite
def logs(draw: st.DrawFn, max_gap: int = 4 * DAY_MS) -> Log:
    """Random multi-session logs in arrival order, with few aids so pairs repeat often."""
    n = draw(st.integers(0, 120))
    log: Log = []
    clock = 1_659_304_800_000
    for _ in range(n):
        clock += draw(st.integers(0, max_gap))
        log.append((
            draw(st.integers(0, 6)),          # session
            draw(st.integers(0, 8)),          # aid
            clock + draw(st.integers(-DAY_MS, 0)),  # mostly ordered, sometimes late
            draw(st.sampled_from([0, 0, 0, 1, 2])),
        ))
    return log


configs = st.builds(
    CovisConfig,
    window=st.integers(1, 6),
    max_gap_ms=st.sampled_from([DAY_MS // 2, DAY_MS]),
    buy_max_gap_ms=st.sampled_from([DAY_MS, 3 * DAY_MS]),
    half_life_ms=st.sampled_from([DAY_MS // 4, DAY_MS, 14 * DAY_MS]),
    epoch_half_lives=st.sampled_from([1, 2, 32]),
)


@settings(max_examples=300, deadline=None)
@given(logs(), configs)
def test_incremental_equals_batch_on_random_logs(log: Log, config: CovisConfig) -> None:
    assert matrices(run_incremental(log, config)) == batch_covisitation(log, config)


@settings(max_examples=100, deadline=None)
@given(logs(), st.integers(0, 120))
def test_batch_does_not_depend_on_how_sessions_interleave(log: Log, seed: int) -> None:
    """Same sessions, same per-session order and timestamps, other interleaving: same matrices
    (the landmark is pinned by keeping the first event first)."""
    if len(log) < 2:
        return
    import random

    rng = random.Random(seed)
    first, rest = log[0], log[1:]
    keys = {s: rng.random() for s, *_ in rest}
    # A stable sort by a random per-session key keeps each session's own order.
    shuffled = [first] + sorted(rest, key=lambda e: keys[e[0]])
    config = CovisConfig(epoch_half_lives=32)
    assert batch_covisitation(shuffled, config) == batch_covisitation(log, config)


def test_pair_counts_once_per_visit_with_the_max_weight() -> None:
    """Bouncing between two items in one visit counts the pair once, at its heaviest type."""
    t = 1_000_000
    log = [(1, 10, t, 0), (1, 20, t + 1, 0), (1, 10, t + 2, 0), (1, 20, t + 3, 1)]
    cv = run_incremental(log, CovisConfig())
    assert cv.matrix("carts_orders") == {10: {20: 6}, 20: {10: 1}}
    assert cv.matrix("buy2buy") == {}


def test_a_pair_counts_again_once_its_run_has_lasted_the_gap() -> None:
    t = 1_000_000
    log = [(1, 10, t, 0), (1, 20, t + 1, 0), (1, 10, t + 2 * DAY_MS, 0),
           (1, 20, t + 2 * DAY_MS + 1, 0)]
    cv = run_incremental(log, CovisConfig())
    assert cv.matrix("carts_orders") == {10: {20: 2}, 20: {10: 2}}


def test_pairs_further_apart_than_the_window_do_not_count() -> None:
    log = [(1, aid, 1000 + aid, 0) for aid in range(5)]
    cv = run_incremental(log, CovisConfig(window=2))
    assert set(cv.row("carts_orders", 0)) == {1, 2}
    assert set(cv.row("carts_orders", 4)) == {2, 3}


def test_buy2buy_pairs_carts_and_orders_only_within_14_days() -> None:
    t = 0
    log = [(1, 1, t, 1), (1, 2, t + 1, 0), (1, 3, t + 13 * DAY_MS, 2), (1, 4, t + 28 * DAY_MS, 1)]
    cv = run_incremental(log, CovisConfig())
    assert cv.matrix("buy2buy") == {1: {3: 1}, 3: {1: 1}}


def test_clicks_weight_doubles_every_half_life() -> None:
    h = DAY_MS
    log = [(1, 1, 0, 0), (1, 2, 1, 0), (2, 1, 2 * h, 0), (2, 3, 2 * h, 0)]
    cv = run_incremental(log, CovisConfig(half_life_ms=h, max_gap_ms=h))
    assert cv.row("clicks", 1)[3] == 4 * cv.row("clicks", 1)[2]


def test_renormalisation_keeps_values_bounded_and_equal_to_batch() -> None:
    h = 1000
    log = [(s, s % 3, s * 10 * h, 0) for s in range(50)] + [(s, 7, s * 10 * h + 1, 0)
                                                            for s in range(50)]
    log.sort(key=lambda e: e[2])
    config = CovisConfig(half_life_ms=h, max_gap_ms=h, epoch_half_lives=4)
    cv = run_incremental(log, config)
    assert cv.epoch > 10
    assert max(w for row in cv.matrix("clicks").values() for w in row.values()) < 2**20
    assert matrices(cv) == batch_covisitation(log, config)


@settings(max_examples=300, deadline=None)
@given(logs(), configs, st.integers(1, 4))
def test_export_ranks_the_packed_rows_as_the_decoded_matrices(
        log: Log, config: CovisConfig, k: int) -> None:
    """``export`` ranks each row straight from its packed form (an older epoch's row shifted
    as it is read): the same output as ranking the decoded matrices."""
    cv = run_incremental(log, config)
    assert list(cv.export(k)) == list(export_rows(*matrices(cv), k))


@pytest.mark.slow
def test_export_at_scale_with_epochs_crossed_equals_the_decoded_matrices() -> None:
    """60,000+ generated events over five days, an epoch every day: long popular rows
    (ranked in numpy), rows of the previous epoch alone (shifted as read) and rows of both."""
    events = sorted((e for _, s in generate_sessions(GeneratorConfig(
        sessions=4_800, items=3_000, seed=4, days=5)) for e in s), key=lambda e: e.ts)
    # Up to mid-afternoon of the fifth day: a few long sessions run on for weeks alone.
    events = [e for e in events if e.ts < events[0].ts + 4 * DAY_MS + 15 * 3_600_000]
    assert len(events) > 50_000
    cv = run_incremental([tuple(e) for e in events],
                         CovisConfig(half_life_ms=DAY_MS, epoch_half_lives=1))
    assert cv.epoch > 3 and cv.old_pairs and cv.pairs
    assert max(len(row) for row in cv.old_pairs.values()) > 512
    assert list(cv.export(20)) == list(export_rows(*matrices(cv), 20))


def test_top_orders_by_weight_then_aid_and_export_matches() -> None:
    cv = CoVisitation()
    cv.buy2buy = {1: {5: 3, 2: 3, 9: 7}}
    assert cv.top("buy2buy", 1, 2) == [(9, 7), (2, 3)]
    rows = list(export_rows({}, cv.buy2buy, {}, 20))
    assert rows == [{"aid": 1, "clicks": [], "carts_orders": [[9, 7], [2, 3], [5, 3]],
                     "buy2buy": []}]


def test_pruning_bounds_rows_to_three_times_the_cap() -> None:
    config = CovisConfig(max_neighbors=3)
    cv = CoVisitation(config)
    state = SessionState.empty(config.window)
    for aid in range(1, 40):
        cv.update(state, 0 if aid % 2 else aid, aid, 0)
    assert all(len(row) <= 9 for row in cv.matrix("carts_orders").values())
    assert cv.pruned_rows > 0


@settings(max_examples=200, deadline=None)
@given(logs(), configs, st.integers(1, 7))
def test_sessions_reloaded_from_their_runs_log_give_the_batch_result(
    log: Log, config: CovisConfig, every: int
) -> None:
    """A worker's way: every ``every`` events, each touched session is written as its state
    without runs plus its runs log (appended to or replaced), then read back from those bytes
    and applied on from there."""
    cv = CoVisitation(config)
    states: dict[int, SessionState] = {}
    stored: dict[int, tuple[bytes, bytes]] = {}
    touched: set[int] = set()
    for i, (session, aid, ts, etype) in enumerate(log, 1):
        state = states.get(session)
        if state is None:
            state = states[session] = SessionState.empty(config.window, track=True)
        cv.update(state, aid, ts, etype)
        touched.add(session)
        if i % every == 0 or i == len(log):
            for s in touched:
                live = states[s]
                entries, full = live.take_runs_log()
                old = stored.get(s, (b"", b""))[1]
                stored[s] = (live.to_bytes(runs=False), entries if full else old + entries)
                back = SessionState.from_bytes(stored[s][0], config.window, stored[s][1])
                assert back == live
                assert back.logged == live.logged == len(stored[s][1]) // 24
                back.track()
                states[s] = back
            touched.clear()
    assert matrices(cv) == batch_covisitation(log, config)


def test_a_runs_log_is_rewritten_whole_once_twice_the_live_runs() -> None:
    state = SessionState.empty(30, track=True)
    key = 1 << 64 | 2
    state.runs[key] = 1
    sizes = []
    for value in range(200):  # the same run changing: the log would grow, the runs do not
        state.runs[key] = value
        state.changed_runs.add(key)  # type: ignore[union-attr]
        entries, full = state.take_runs_log()
        sizes.append((len(entries) // 24, full))
    assert state.logged <= 2 * 1 + 64
    assert sizes[0] == (1, False) and (1, True) in sizes


def test_runs_freed_by_a_sweep_before_they_are_logged_are_left_out() -> None:
    """A run changed in a batch and freed by the batch's own expiry sweep later in it (the
    session idle past the runs' lifetime) is not in the log, and reading the state back
    gives what the worker holds (a worker once crashed on it: large batches of replayed
    days)."""
    state = SessionState.empty(30, track=True)
    changed = 1 << 64 | 2
    state.runs[changed] = 5
    state.runs[3 << 64 | 4] = 6
    state.buy_runs[5 << 64 | 6] = 7
    state.changed_runs.add(changed)  # type: ignore[union-attr]
    state.changed_buy_runs.add(5 << 64 | 6)  # type: ignore[union-attr]
    state.runs.clear()  # what SessionStore.expire does to an idle session
    state.buy_runs.clear()
    entries, full = state.take_runs_log()
    assert (entries, full) == (b"", False)
    assert SessionState.from_bytes(state.to_bytes(runs=False), 30, entries) == state


@settings(max_examples=200, deadline=None)
@given(logs(), configs, st.integers(1, 7), st.sampled_from([0, 2]))
def test_a_journal_only_instance_journals_the_same_increments(
    log: Log, config: CovisConfig, every: int, cap: int
) -> None:
    """A worker's matrices live in the store: its instance journals increments and keeps no
    rows. Its journals must be the full instance's, batch by batch (pruning included)."""
    config = dataclasses.replace(config, max_neighbors=cap)
    full, lean = CoVisitation(config), CoVisitation(config, keep_matrices=False)
    full.take_journal()
    states = {cv: {} for cv in (full, lean)}  # type: ignore[var-annotated]
    for i, (session, aid, ts, etype) in enumerate(log, 1):
        for cv in (full, lean):
            state = states[cv].setdefault(session, SessionState.empty(config.window))
            cv.update(state, aid, ts, etype)
        if i % every == 0 or i == len(log):
            expected, got = full.take_journal(), lean.take_journal()
            assert [(j.epoch, j.pairs, j.buys) for j in got] == \
                [(j.epoch, j.pairs, j.buys) for j in expected]
    assert lean.pairs == {} and lean.buy2buy == {} and lean.cell_count() == 0


@settings(max_examples=150, deadline=None)
@given(logs(), configs, st.lists(st.tuples(st.sampled_from(["clicks", "carts_orders", "buy2buy"]),
                                           st.integers(0, 8), st.integers(1, 12)),
                                 min_size=1, max_size=6),
       st.sampled_from([0, 2]))
def test_cached_top_lists_always_equal_a_fresh_ranking(
    log: Log, config: CovisConfig, reads: list[tuple[str, int, int]], cap: int
) -> None:
    """Top lists are cached per row until the row changes, whatever k they were read with."""
    config = dataclasses.replace(config, max_neighbors=cap)
    cv = CoVisitation(config)
    states: dict[int, SessionState] = {}
    for session, aid, ts, etype in log:
        state = states.setdefault(session, SessionState.empty(config.window))
        cv.update(state, aid, ts, etype)
        for matrix, row, k in reads:
            fresh = sorted(cv.row(matrix, row).items(), key=lambda e: (-e[1], e[0]))[:k]
            assert cv.top(matrix, row, k) == fresh


@settings(max_examples=200, deadline=None)
@given(row=st.dictionaries(st.integers(0, 30), st.integers(0, 50), max_size=25),
       raises=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30)), max_size=30),
       k=st.integers(1, 8))
def test_a_top_list_kept_through_rising_weights_equals_ranking_the_row_again(
        row: dict[int, int], raises: list[tuple[int, int]], k: int) -> None:
    """Row caches keep each row's top list through the increments of their own batches
    (weights only rise, new neighbours come in): it is the row's ranking at every step,
    ties by aid included (small weights make many)."""
    from online_models.rows import raised_top, top_items

    top = top_items(row, k)
    for b, inc in raises:
        before = list(top)
        row[b] = row.get(b, 0) + inc
        top = raised_top(top, k, b, row[b])
        assert top == top_items(row, k)
        assert raised_top(before, k, b, row[b]) == top  # the list it started from is intact


def test_a_row_cache_keeps_its_rows_up_only_while_fresh() -> None:
    """A held row takes a stored batch's increments while fresh; past its age it is dropped
    rather than kept up, since the next read replaces it."""
    from distributed.serving import RowCache
    from online_models.rows import CellJournal

    cache = RowCache(max_age_s=5.0)
    row = cache.put(("buy2buy", 7), {8: 1}, 0.0, 0)
    journal = CellJournal(0)
    journal.buys[7] = {8: 2, 9: 1}
    cache.add([journal], now=1.0)
    assert row == {8: 3, 9: 1} and cache.get(("buy2buy", 7), 1.0, 0) is row
    cache.add([journal], now=6.0)
    assert ("buy2buy", 7) not in set(cache) and row == {8: 3, 9: 1}


def test_a_row_cache_drops_a_row_when_an_epoch_begins() -> None:
    """A row held is the sum of the store's last two epochs: an increment of a newer epoch
    means the oldest is forgotten, and a newer epoch in the store too."""
    from distributed.serving import RowCache
    from online_models.rows import CellJournal

    cache = RowCache(max_age_s=5.0)
    cache.put(("buy2buy", 7), {8: 1}, 0.0, 3)
    assert cache.get(("buy2buy", 7), 1.0, 4) is None  # the store is in epoch 4 now
    cache.put(("carts_orders", 7), {8: 1}, 0.0, 3)
    journal = CellJournal(4)
    journal.pairs[7] = {8: 5}
    cache.add([journal], now=1.0)
    assert ("carts_orders", 7) not in set(cache)
