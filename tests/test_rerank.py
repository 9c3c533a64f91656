"""The re-rankers: what they serve before learning, when learning reaches serving, snapshots."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from online_models.candidates import Candidates, build_candidates, candidate_rows
from online_models.recommend import recommend, rows_needed
from online_models.rerank import PRIOR_ONLY, RerankConfig, Reranker
from producers.generator import GeneratorConfig, generate_sessions
from stream.events import CARTS, CLICKS, ORDERS, Event
from stream.pipeline import PipelineConfig, SessionPipeline

T0 = 1_659_304_800_000


def _trained(rerank: RerankConfig, sessions: int = 400) -> SessionPipeline:
    pipeline = SessionPipeline(PipelineConfig(rerank=rerank))
    events = sorted((e for _, es in generate_sessions(
        GeneratorConfig(sessions=sessions, items=150, seed=5, days=3)) for e in es),
        key=lambda e: e.ts)
    pipeline.apply(events)
    return pipeline


def test_an_untrained_reranker_serves_the_prior_own_items_most_recent_first() -> None:
    pipeline = SessionPipeline(PipelineConfig(rerank=RerankConfig(learning_rate=0.0)))
    pipeline.apply([Event(9, 10 + i, T0 + i * 1000, CLICKS) for i in range(5)])
    pipeline.apply([Event(1, 3, T0 + 10_000, CLICKS), Event(1, 4, T0 + 11_000, CLICKS),
                    Event(1, 5, T0 + 12_000, CARTS), Event(1, 4, T0 + 13_000, CLICKS)])
    lists = pipeline.recommendations(1)
    assert lists.clicks[:3] == [4, 5, 3]
    assert set(lists.carts[:3]) == {3, 4, 5}
    assert lists.carts[0] == 5  # the cart weighs most in the carts prior
    assert len(lists.clicks) == len(set(lists.clicks))


def test_learning_reaches_serving_only_at_a_snapshot() -> None:
    config = RerankConfig(snapshot_every=10_000)
    pipeline = _trained(config)
    ranker = pipeline.reranker.rankers[CLICKS]  # type: ignore[union-attr]
    assert ranker.learned > 100
    assert ranker.swaps == 0
    assert ranker.serving is PRIOR_ONLY  # still the starting weights
    assert dict(ranker.model.weights) != ranker.serving  # the model itself has learned
    ranker.swap()
    assert ranker.snapshot == dict(ranker.model.weights)


def _shortlist(n: int = 30, objective: int = CARTS) -> Candidates:
    """``n`` shortlisted aids 100.. in prior order; aid 100 + i carries the key ``f"k{i}"``."""
    top = list(range(n))
    aids = [100 + i for i in top]
    tops = tuple(top if o == objective else [] for o in range(3))
    return Candidates(aids, [[f"k{i}"] for i in top], tops,  # type: ignore[arg-type]
                      (aids, aids, aids))


def test_a_snapshot_worse_than_the_prior_never_keeps_serving() -> None:
    """A snapshot that ranks the prior upside down loses every judged event to the prior:
    the prior serves on, and the metrics count why."""
    ranker = Reranker(RerankConfig(learning_rate=0.0, snapshot_every=1)).rankers[CARTS]
    ranker.model._weights["prior"] = -1.0  # learning rate 0: it stays this bad
    ranker.swap()
    for _ in range(50):
        assert ranker.learn(_shortlist(), CARTS, 100)  # the prior's #1
        assert ranker.serving is PRIOR_ONLY
    assert (ranker.judged, ranker.prior_hits, ranker.model_hits) == (50, 50, 0)
    assert ranker.edge < 0


def test_loaded_weights_serve_until_the_next_swap_whatever_the_judging() -> None:
    """A node serving a snapshot loaded from the store keeps serving it while it judges its
    own events (all nodes serve the same saved model); its own next swap is gated again."""
    ranker = Reranker(RerankConfig(learning_rate=0.0, snapshot_every=0))
    loaded = orjson.dumps({"carts": {"prior": 1.0, "k3": 0.5}})
    ranker.load_snapshot(loaded)
    carts = ranker.rankers[CARTS]
    for _ in range(5):
        carts.learn(_shortlist(), CARTS, 100)
    assert carts.serving == {"prior": 1.0, "k3": 0.5}
    carts.swap()
    assert carts.serving is PRIOR_ONLY  # its own snapshot has no edge on the prior


def test_a_snapshot_serves_as_soon_as_it_beats_the_prior() -> None:
    """The first judged event the snapshot gets and the prior misses puts it in service; a
    run of events the prior gets and it misses takes it out again."""
    reranker = Reranker(RerankConfig(learning_rate=0.0, snapshot_every=1))
    ranker = reranker.rankers[ORDERS]
    ranker.model._weights["k25"] = 100.0  # ranks the prior's #26 first
    ranker.swap()
    assert ranker.serving is PRIOR_ONLY  # not judged yet
    assert ranker.learn(_shortlist(objective=ORDERS), ORDERS, 125)
    assert ranker.serving is ranker.snapshot and ranker.serves_model
    assert reranker.stats()["rerank_serving_model_orders"] == 1
    assert reranker.lists(_shortlist(objective=ORDERS)).orders[0] == 125
    ranker.model._weights["k25"] = 0.0
    ranker.model._weights["prior"] = -1.0
    ranker.swap()
    for _ in range(2):
        ranker.learn(_shortlist(objective=ORDERS), ORDERS, 100)
    assert ranker.serving is PRIOR_ONLY
    assert reranker.stats()["rerank_serving_model_orders"] == 0


def test_a_loaded_snapshot_serves_the_same_lists() -> None:
    pipeline = _trained(RerankConfig(snapshot_every=50))
    assert pipeline.reranker is not None
    other = Reranker(RerankConfig())
    other.load_snapshot(pipeline.reranker.snapshot_bytes())
    state = pipeline.sessions.get(pipeline.sessions.recent_sessions(1)[0])
    assert state is not None
    candidates = build_candidates(list(state.recent), pipeline.covis, pipeline.popularity,
                                  pipeline.successors, pipeline.reranker.config)
    assert other.lists(candidates) == pipeline.reranker.lists(candidates)


def test_without_learning_only_the_sessions_move() -> None:
    pipeline = _trained(RerankConfig())
    cells, items = pipeline.covis.cell_count(), pipeline.popularity.items()
    learned = pipeline.reranker.stats()  # type: ignore[union-attr]
    pipeline.apply([Event(10**6, 1, T0 + 9 * 86_400_000, CLICKS),
                    Event(10**6, 2, T0 + 9 * 86_400_000 + 1, CLICKS)], learn=False)
    assert pipeline.covis.cell_count() == cells
    assert pipeline.popularity.items() == items
    assert pipeline.reranker.stats() == learned  # type: ignore[union-attr]
    state = pipeline.sessions.get(10**6)
    assert state is not None and [a for a, _, _ in state.recent] == [1, 2]


@given(st.integers(0, 2**63 - 1), st.integers(0, 100))
def test_session_sampling_is_a_function_of_the_id(session: int, percent: int) -> None:
    reranker = Reranker(RerankConfig(sample_percent=percent))
    assert reranker.sampled(session) == Reranker(RerankConfig(sample_percent=percent)).sampled(
        session)
    if percent == 0:
        assert not reranker.sampled(session)
    if percent == 100:
        assert reranker.sampled(session)


def test_sampling_takes_about_the_asked_share() -> None:
    reranker = Reranker(RerankConfig(sample_percent=25))
    share = sum(reranker.sampled(s) for s in range(20_000)) / 20_000
    assert 0.22 < share < 0.28


def _candidates(*aids: int) -> Candidates:
    top = list(range(len(aids)))
    return Candidates(list(aids), [[] for _ in aids], (top, top, top),
                      (list(aids), list(aids), list(aids)))


def test_a_cart_teaches_from_an_earlier_state_not_the_one_just_before() -> None:
    """The carts list is for everything carted later, so a cart is learned against a state
    drawn from the session's earlier ones; the clicks model learns from the latest state."""
    reranker = Reranker(RerankConfig())
    earlier, latest = _candidates(5, 6), _candidates(7, 8)
    assert not reranker.learn(1, earlier, CARTS, 5)  # nothing kept yet for session 1
    assert reranker.learn(1, earlier, CLICKS, 6)
    # the state just before the cart lacks 5; the kept earlier one has it
    assert reranker.learn(1, latest, CARTS, 5)
    assert reranker.rankers[CARTS].learned == 1
    assert not reranker.learn(2, latest, CARTS, 5)  # another session's state is not used


def test_the_kept_state_is_drawn_uniformly_from_the_session() -> None:
    reranker = Reranker(RerankConfig(seed=3))
    counts = {aid: 0 for aid in range(4)}
    for session in range(4000):
        for aid in range(4):
            reranker.learn(session, _candidates(aid), CLICKS, aid)
        kept = reranker._kept[session][1].aids[0]
        counts[kept] += 1
    assert all(800 < n < 1200 for n in counts.values()), counts


class _DecayedRows:
    """Matrices whose weights all decayed to zero (old cells shifted out by epochs)."""

    def top(self, matrix: str, aid: int, k: int = 20) -> list[tuple[int, int]]:
        return [(aid + 1, 0), (aid + 2, 0)]


class _NoPopularity:
    def top(self, etype: int, k: int = 20) -> list[int]:
        return []

    def score(self, etype: int, aid: int) -> int:
        return 0


def test_rows_whose_weights_decayed_to_zero_add_no_candidates() -> None:
    events = [(10, T0, CLICKS), (20, T0 + 1000, CARTS)]
    candidates = build_candidates(events, _DecayedRows(), _NoPopularity(), None, RerankConfig())
    assert sorted(candidates.aids) == [10, 20]


def test_the_candidate_rows_are_the_rows_build_candidates_reads() -> None:
    read: list[tuple[str, int]] = []

    class Recording(_DecayedRows):
        def top(self, matrix: str, aid: int, k: int = 20) -> list[tuple[int, int]]:
            read.append((matrix, aid))
            return super().top(matrix, aid, k)

    events = [(aid, T0 + i * 1000, CARTS if aid == 3 else CLICKS)
              for i, aid in enumerate([1, 2, 3, 4, 5, 6, 7, 2])]
    config = RerankConfig(history=5)
    build_candidates(events, Recording(), _NoPopularity(), None, config)
    assert sorted(set(read)) == sorted(candidate_rows(events, config))


def test_mixing_takes_the_mean_of_both_models() -> None:
    mine, theirs = Reranker(RerankConfig(snapshot_every=0)), Reranker()
    mine.rankers[CLICKS].model._weights["own=1"] = 1.0
    theirs.rankers[CLICKS].model._weights.update({"prior": 3.0, "carted": 2.0})
    theirs.rankers[CLICKS].serving = {"prior": 9.0}  # what serves is not mixed
    mine.mix(theirs.snapshot_bytes())
    assert dict(mine.rankers[CLICKS].model.weights) == {"prior": 2.0, "own=1": 0.5,
                                                        "carted": 1.0}
    assert mine.rankers[CLICKS].serving == {"prior": 1.0}  # serving moves at the next swap
    mine.swap()
    assert mine.rankers[CLICKS].snapshot["carted"] == 1.0


_SESSIONS = st.lists(st.tuples(st.integers(1, 40), st.sampled_from([CLICKS, CARTS, ORDERS])),
                     min_size=1, max_size=40)


@given(_SESSIONS, st.integers(1, 10))
def test_what_the_lists_read_is_what_the_store_prefetches(session: list[tuple[int, int]],
                                                           history: int) -> None:
    """Both list recipes read exactly the rows their one description names, whatever the
    session (short, long, repeated items, buys), so a worker's prefetch never misses one."""
    read: list[tuple[str, int]] = []

    class Recording(_DecayedRows):
        def top(self, matrix: str, aid: int, k: int = 20) -> list[tuple[int, int]]:
            read.append((matrix, aid))
            return super().top(matrix, aid, k)

    events = [(aid, T0 + i * 1000, etype) for i, (aid, etype) in enumerate(session)]
    config = RerankConfig(history=history)
    build_candidates(events, Recording(), _NoPopularity(), None, config)
    assert sorted(set(read)) == sorted(candidate_rows(events, config))
    read.clear()
    recommend(events, Recording(), _NoPopularity(), 20)
    assert sorted(set(read)) == sorted(set(rows_needed(events, 20)))
