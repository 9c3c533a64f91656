"""A shopper switching the method that serves their own session (stream.switch, PUT
/sessions/{id}/method): every method reads the same state, only what is shown changes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from conftest import SERVICE, LiveServer
from websockets.sync.client import connect

from evaluation.protocols import time_ordered
from liverec.settings import Settings
from online_models.recommend import recommend
from online_models.rerank import RerankConfig
from online_models.sequence import SequenceConfig, SequenceModel
from producers.generator import GeneratorConfig, generate_sessions
from stream.pipeline import PipelineConfig, SessionPipeline, session_lists
from stream.switch import MethodSwitch


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.npz"
    SequenceModel.untrained(SequenceConfig(kind="gru4rec", dim=8), range(2000)).save(path)
    return path


@pytest.fixture(scope="module")
def fed(model_path: Path) -> MethodSwitch:
    """A pipeline fed 60,000 generated events (long sessions, popular items, 40 days)."""
    pipeline = SessionPipeline(PipelineConfig(rerank=RerankConfig(
        sequence_model=str(model_path), sample_percent=5)))
    config = GeneratorConfig(sessions=4000, items=2000, seed=5)
    events = time_ordered(e for _, s in generate_sessions(config) for e in s)[:60_000]
    assert len(events) == 60_000
    for i in range(0, len(events), 1000):
        pipeline.apply(events[i:i + 1000])
    return MethodSwitch(pipeline)


@pytest.mark.slow
def test_each_method_serves_what_it_says(fed: MethodSwitch) -> None:
    pipeline = fed.pipeline
    assert fed.default == "rerank"
    assert fed.available() == ["rerank", "covis", "sequence", "popular"]
    sessions = pipeline.sessions.recent_sessions(200)
    k = pipeline.config.list_size
    for session in sessions:
        state = pipeline.sessions.get(session)
        assert fed.recommendations(session).clicks == pipeline.recommendations(session).clicks
        fed.choose(session, "covis")
        covis = fed.recommendations(session)
        assert covis.method == "covis"
        assert covis.clicks == session_lists(session, state, pipeline.covis,
                                             pipeline.popularity, k).clicks
        fed.choose(session, "sequence")
        picks = [a for a, _ in pipeline.reranker.sequence.top(  # type: ignore[union-attr]
            [a for a, _, _ in state.recent], k)] if state is not None else []
        sequence = fed.recommendations(session)
        assert sequence.clicks[:len(picks)] == picks and len(sequence.clicks) == k
        assert sequence.why is not None
        fed.choose(session, "popular")
        assert fed.recommendations(session).clicks == recommend(
            [], pipeline.covis, pipeline.popularity, k).clicks
        fed.choose(session, "rerank")
        assert fed.method_of(session) == "rerank"
    assert len(fed._chosen) == 0  # back to the default: nothing remembered


def test_unknown_methods_are_refused_and_choices_stay_bounded() -> None:
    switch = MethodSwitch(SessionPipeline(PipelineConfig()), limit=100)
    assert switch.default == "covis" and switch.available() == ["covis", "popular"]
    for bad in ("rerank", "sequence", "", "covis; drop", "x" * 1000):
        with pytest.raises(ValueError, match="not served here"):
            switch.choose(1, bad)
    for session in range(100_000):
        switch.choose(session, "popular")
    assert len(switch._chosen) == 100
    assert switch.method_of(99_999) == "popular" and switch.method_of(0) == "covis"


@pytest.fixture
def server(model_path: Path) -> LiveServer:
    from conftest import INGEST_KEY, SECRET
    live = LiveServer(Settings(port=0, secret=SECRET, ingest_key=INGEST_KEY,
                               sequence_model=str(model_path)))
    yield live  # type: ignore[misc]
    live.close()


def shopper(server: LiveServer) -> tuple[int, dict[str, str], str]:
    body = httpx.post(f"{server.url}/sessions").json()
    return body["session"], {"authorization": f"Bearer {body['token']}"}, body["token"]


def test_a_shopper_switches_their_own_session_and_the_push_says_so(server: LiveServer) -> None:
    session, auth, token = shopper(server)
    methods = httpx.get(f"{server.url}/methods").json()
    assert methods["default"] == "rerank"
    assert [m["name"] for m in methods["methods"]] == ["rerank", "covis", "sequence", "popular"]
    events = [{"session": session, "aid": a, "type": "clicks"} for a in (3, 4, 5)]
    assert httpx.post(f"{server.url}/events", json=events, headers=auth).status_code == 202
    with connect(f"{server.ws_url}/ws/sessions/{session}?token={token}") as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["method"] == "rerank"
        answer = httpx.put(f"{server.url}/sessions/{session}/method",
                           json={"method": "sequence"}, headers=auth)
        assert answer.status_code == 200 and answer.json()["method"] == "sequence"
        deadline = time.monotonic() + 10
        pushed = first
        while pushed["method"] != "sequence":
            pushed = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        assert pushed["clicks"] == answer.json()["clicks"]
        assert {r["source"] for r in pushed["why"]["clicks"]} <= {"sequence_pick", "popular"}
    got = httpx.get(f"{server.url}/sessions/{session}/recommendations", headers=auth).json()
    assert got["method"] == "sequence"


@pytest.mark.parametrize(("target", "headers", "body", "status", "field"), [
    ("own", {}, {"method": "covis"}, 401, "authorization"),
    ("other", None, {"method": "covis"}, 403, "authorization"),
    ("public", None, {"method": "covis"}, 403, "authorization"),
    ("own", None, {"method": "nope"}, 422, "method"),
    ("own", None, {"method": 3}, 422, "method"),
    ("own", None, {"method": "covis", "x": 1}, 422, "method"),
    ("own", None, ["covis"], 422, "method"),
])
def test_switching_is_refused_with_the_field_and_reason(
        server: LiveServer, target: str, headers: dict[str, str] | None, body: object,
        status: int, field: str) -> None:
    session, auth, _ = shopper(server)
    other, _, _ = shopper(server)
    where = {"own": session, "other": other, "public": 42}[target]
    answer = httpx.put(f"{server.url}/sessions/{where}/method", json=body,
                       headers=auth if headers is None else headers)
    assert answer.status_code == status
    (error,) = answer.json()["detail"]
    assert error["field"] == field and error["reason"]
    served = httpx.get(f"{server.url}/sessions/{session}/recommendations", headers=auth).json()
    assert served["method"] == "rerank"  # nothing changed


def test_a_large_body_is_refused_unread(server: LiveServer) -> None:
    session, auth, _ = shopper(server)
    answer = httpx.put(f"{server.url}/sessions/{session}/method",
                       content=b'{"method": "' + b"x" * 100_000 + b'"}', headers=auth)
    assert answer.status_code == 413 and answer.json()["detail"][0]["field"] == "body"


def test_the_service_key_may_switch_any_session(server: LiveServer) -> None:
    answer = httpx.put(f"{server.url}/sessions/42/method", json={"method": "popular"},
                       headers=SERVICE)
    assert answer.status_code == 200 and answer.json()["method"] == "popular"
