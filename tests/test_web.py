"""REST endpoints over a real socket: recommendations, event ingest and its validation."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import SERVICE

from stream.events import Event

T0 = 1_659_304_800_000


@pytest.fixture
def client(live_server):  # type: ignore[no-untyped-def]
    """A shop's backend: posts with the service key."""
    with httpx.Client(base_url=live_server.url, timeout=10, headers=SERVICE) as c:
        yield c


def wait_applied(server, n: int) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while server.runtime.pipeline.events_applied < n:
        assert time.monotonic() < deadline, "events were not applied"
        time.sleep(0.01)


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"pipeline": "ok"}}  # each check named


def test_recommendations_of_an_unseen_session_are_well_formed(client: httpx.Client) -> None:
    body = client.get("/sessions/42/recommendations").json()
    assert set(body) == {"session", "clicks", "carts", "orders", "version", "event_ts", "why",
                         "public", "method"}
    assert body["session"] == 42 and body["version"] == 0


def test_posted_events_change_the_session_lists(live_server, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    events = [{"session": 7, "aid": a, "type": "clicks"} for a in range(1, 4)]  # ts: now
    assert client.post("/events", json=events).json() == {"accepted": 3}
    assert client.post("/events", json={"session": 7, "aid": 9, "type": "carts"}).status_code == 202
    wait_applied(live_server, 4)
    body = client.get("/sessions/7/recommendations").json()
    assert body["version"] == 4
    assert body["clicks"][:4] == [9, 3, 2, 1]  # own items, most recent first
    assert body["event_ts"] >= T0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"aid": 1, "type": "clicks"}, "session"),
        ({"session": 1, "aid": "x", "type": "clicks"}, "aid"),
        ({"session": 1, "aid": 1, "type": "views"}, "type"),
        ({"session": 1, "aid": 1, "type": "clicks", "ts": -5}, "ts"),
        ({"session": 1, "aid": 1, "type": "clicks", "ts": 10**17}, "ts"),
        ([{"session": 1, "aid": 1, "type": "clicks"}, 5], "event"),
    ],
)
def test_a_bad_event_gets_422_with_the_field_and_reason(
    live_server, client: httpx.Client, body: object, field: str  # type: ignore[no-untyped-def]
) -> None:
    response = client.post("/events", json=body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["field"] == field and error["reason"]
    assert live_server.runtime.pipeline.events_applied == 0  # all or nothing


def test_a_body_over_the_limit_gets_413_and_is_not_read(live_server, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    from web.intake import MAX_BODY_BYTES

    response = client.post("/events", content=b"[" + b" " * MAX_BODY_BYTES + b"]",
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "bytes" in response.json()["detail"][0]["reason"]
    assert client.post("/events", json={"session": 3, "aid": 1, "type": "clicks"}
                       ).status_code == 202  # the node goes on


def test_a_failing_intake_answers_500_and_the_node_goes_on(
    live_server, client: httpx.Client, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    runtime = live_server.runtime
    publish = runtime.publish

    async def broken(events: object) -> None:
        raise RuntimeError("the bus is gone")

    monkeypatch.setattr(runtime, "publish", broken)
    body = {"session": 3, "aid": 1, "type": "clicks"}
    response = client.post("/events", json=body)
    assert response.status_code == 500 and response.json() == {"detail": "Internal Server Error"}
    monkeypatch.setattr(runtime, "publish", publish)
    assert client.post("/events", json=body).status_code == 202
    assert client.get("/healthz").status_code == 200


def test_a_body_that_is_not_json_gets_422(client: httpx.Client) -> None:
    response = client.post("/events", content=b"{nope",
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"][0]["reason"]


def test_metrics_count_processed_and_rejected_events(live_server, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    live_server.call(live_server.runtime.publish([Event(1, 1, T0, 0), Event(1, 2, T0, 0)]))
    client.post("/events", json={"session": 1})
    wait_applied(live_server, 2)
    text = client.get("/metrics").text
    assert "liverec_events_processed_total 2.0" in text
    assert "liverec_events_rejected_total 1.0" in text


def test_metrics_and_stats_show_prequential_recall(live_server, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """Each event with history is judged against the lists live before it: a shopper going
    back to the item before is a hit (own items lead the lists), a brand-new item a miss."""
    reranker = live_server.runtime.pipeline.reranker
    s = next(s for s in range(1, 10_000) if reranker.sampled(s))  # sessions judged: a share
    events = [Event(s, 1, T0, 0), Event(s, 2, T0 + 1000, 0), Event(s, 1, T0 + 2000, 0),
              Event(s, 99, T0 + 3000, 0)]
    live_server.call(live_server.runtime.publish(events))
    wait_applied(live_server, 4)
    text = client.get("/metrics").text
    assert 'liverec_prequential_judged_total{objective="clicks"} 3.0' in text
    assert 'liverec_prequential_hits_total{objective="clicks"} 1.0' in text
    assert 'liverec_prequential_recall{objective="clicks"} 0.333' in text
    recall = client.get("/stats").json()["recall"]
    assert recall["clicks"] == pytest.approx(1 / 3)
    assert recall["carts"] is None
    # Of those, the clicks model learned from the one whose item it had shortlisted (the
    # other two were new items), first judging it against the prior it starts from; the
    # prior serves (no snapshot has beaten it).
    assert 'liverec_rerank_judged_total{objective="clicks"} 1.0' in text
    assert 'liverec_rerank_hits_total{objective="clicks",ranking="prior"} 1.0' in text
    assert 'liverec_rerank_serving_model{objective="clicks"} 0.0' in text
    models = client.get("/stats").json()["models"]
    assert models["clicks"] == {"judged": 1, "model": 1.0, "prior": 1.0, "serving": "prior"}
    assert models["orders"] == {"judged": 0, "model": None, "prior": None, "serving": "prior"}


def test_catalog_gives_stable_readable_items(client: httpx.Client) -> None:
    first = client.get("/catalog/items", params={"aids": "1,2,3"}).json()
    assert [i["aid"] for i in first] == [1, 2, 3]
    assert first == client.get("/catalog/items", params={"aids": "1,2,3"}).json()
    assert all(i["name"] and i["category"] for i in first)
    assert client.get("/catalog/items", params={"aids": "1,x"}).status_code == 422


@pytest.mark.parametrize("session", ["-5", "abc", str(2**63)])
def test_an_invalid_session_id_is_rejected(client: httpx.Client, session: str) -> None:
    assert client.get(f"/sessions/{session}/recommendations").status_code == 422


def test_post_events_is_in_the_openapi_schema(client: httpx.Client) -> None:
    # A plain route for speed (web/app.py), documented by hand: the docs must still list it.
    paths = client.get("/openapi.json").json()["paths"]
    assert {"202", "401", "403", "415", "422", "429"} <= set(paths["/events"]["post"]["responses"])
    assert "/ws/sessions/{session}" in paths  # the WebSocket and its message, documented
    assert "/sessions/{session}/recommendations" in paths
    assert client.get("/events").status_code == 405  # POST only
