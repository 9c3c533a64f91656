"""Every listed item says why it is there, and the reason is true: the item behind it is in
the session and its row holds the listed item; an own item is named as such; popular items
are popular. Checked by hand, and on a user's log on both list makers."""

from __future__ import annotations

from typing import Any

import pytest

from liverec.runtime import pipeline_config
from liverec.settings import Settings
from online_models.explain import MATRIX_SOURCE, SOURCES, YOU
from online_models.popularity import ALL_TYPES
from producers.generator import GeneratorConfig, generate_sessions
from stream.events import CARTS, CLICKS, ORDERS, Event
from stream.pipeline import PipelineConfig, Recommendations, SessionPipeline

T0 = 1_659_304_800_000
ROWS = {"viewed_with": ("clicks",), "bought_with": ("carts_orders", "buy2buy"),
        "viewed_after": ("successors",)}


def test_reasons_by_hand() -> None:
    """Others viewed 1 with 2 and bought 3 with 4; our shopper views 1 and carts 3."""
    pipeline = SessionPipeline()
    pipeline.apply([Event(9, 1, T0, CLICKS), Event(9, 2, T0 + 1000, CLICKS),
                    Event(8, 3, T0 + 2000, CARTS), Event(8, 4, T0 + 3000, ORDERS),
                    Event(7, 5, T0 + 4000, ORDERS)])
    pipeline.apply([Event(1, 1, T0 + 5000, CLICKS), Event(1, 3, T0 + 6000, CARTS)])
    recs = pipeline.recommendations(1)
    assert recs.why is not None
    clicks = dict(zip(recs.clicks, recs.why["clicks"], strict=True))
    carts = dict(zip(recs.carts, recs.why["carts"], strict=True))
    assert clicks[1] == ("you_viewed", None) and carts[3] == ("you_carted", None)
    assert clicks[2] == ("viewed_with", 1)
    assert carts[4] == ("bought_with", 3)
    assert carts[5] == ("popular_now", None)
    assert recs.to_json()["why"]["carts"][0] == {"source": carts[recs.carts[0]].source,
                                                 "via": carts[recs.carts[0]].via}
    assert Recommendations.from_json(recs.to_json()).why == recs.why


def check_reasons(pipeline: SessionPipeline, session: int) -> int:
    """Assert every reason of the session's lists is true; return how many were checked."""
    recs = pipeline.recommendations(session)
    state = pipeline.sessions.get(session)
    events = list(state.recent) if state is not None else []
    own = {aid: max(t for a, _, t in events if a == aid) for aid, _, _ in events}
    popular = {a for t in (CLICKS, CARTS, ORDERS, ALL_TYPES) for a in
               pipeline.popularity.top(t, 40)}
    assert recs.why is not None
    checked = 0
    for objective in ("clicks", "carts", "orders"):
        listed: list[int] = getattr(recs, objective)
        reasons = recs.why[objective]
        assert len(reasons) == len(listed)
        for aid, (source, via) in zip(listed, reasons, strict=True):
            assert source in SOURCES
            if aid in own:
                assert (source, via) == (YOU[own[aid]], None)
            elif source in ROWS:
                assert via in own, (aid, source, via)
                rows = [b for m in ROWS[source] for b, _ in (
                    pipeline.successors.top(via, 100) if m == "successors"
                    and pipeline.successors is not None else pipeline.covis.top(m, via, 100))]
                assert aid in rows, (aid, source, via)
            elif source == "sessions_like_yours":
                assert pipeline.similar is not None
                like = pipeline.similar.top([a for a, _, _ in events], session, 100)
                assert aid in {b for b, _ in like}, (aid, source)
            elif source == "popular_now":
                assert aid in popular
            checked += 1
    return checked


@pytest.fixture(scope="module")
def users_log() -> list[Event]:
    """50,928 events: 3,000 sessions over 62 days, sessions up to 500 events."""
    sessions = generate_sessions(GeneratorConfig(sessions=3000, items=4000, seed=99))
    return sorted((e for _, evs in sessions for e in evs), key=lambda e: e.ts)


@pytest.mark.parametrize(("rerank", "similar"), [(False, 0), (True, 0), (True, 50_000)],
                         ids=["recipe", "rerankers", "rerankers-similar-sessions"])
def test_every_reason_is_true_on_a_users_log(users_log: list[Event], rerank: bool,
                                             similar: int) -> None:
    assert len(users_log) >= 50_000
    settings = Settings(rerank_similar_sessions=similar)
    pipeline = SessionPipeline(pipeline_config(settings, rerank=rerank))
    pipeline.apply(users_log)
    sources: dict[str, int] = {}
    checked = 0
    latest = list(dict.fromkeys(e.session for e in reversed(users_log)))[:400]
    for session in latest:
        checked += check_reasons(pipeline, session)
        for reasons in (pipeline.recommendations(session).why or {}).values():
            for reason in reasons:
                sources[reason.source] = sources.get(reason.source, 0) + 1
    assert checked == 400 * 60
    # The lists draw on the session, its items' rows and popularity: each shows up.
    assert {"you_viewed", "viewed_with", "bought_with"} <= set(sources), sources
    if not similar:  # with them, most of their items are in a matrix row too, named first
        assert "sessions_like_yours" not in sources, sources


def test_hostile_clocks_and_unknown_items_still_give_a_reason_each() -> None:
    pipeline = SessionPipeline(PipelineConfig())
    pipeline.apply([Event(1, 10**12, 0, CLICKS), Event(1, 3, 4_102_444_800_000, ORDERS),
                    Event(2, 3, 1, CARTS), Event(2, 0, 2, CLICKS)])
    for session in (1, 2, 99):
        recs = pipeline.recommendations(session)
        assert recs.why is not None
        assert all(len(recs.why[o]) == len(getattr(recs, o)) for o in recs.why)
        assert all(r.source in SOURCES for o in recs.why for r in recs.why[o])


def test_sources_cover_every_matrix() -> None:
    covered: set[Any] = {m for ms in ROWS.values() for m in ms}
    assert covered == set(MATRIX_SOURCE)
