"""No client moves the stream's clock: a replay keeps its own time, and a posted event's ``ts``
is the server's to accept, stamp or refuse (web/app.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import SERVICE, LiveServer

from producers.generator import GeneratorConfig, generate_sessions
from producers.ordering import time_ordered
from web.intake import EVENT_FUTURE_MS, EVENT_PAST_MS

Y2099 = int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def replayed() -> Iterator[LiveServer]:
    """The demo's runtime after a replay at full speed of a user's log: 50,928 events of
    3,000 sessions over 62 days of 2022."""
    server = LiveServer()
    config = GeneratorConfig(sessions=3000, items=4000, seed=99)
    events = list(time_ordered(e for _, s in generate_sessions(config) for e in s))
    server.runtime.replay_clock(events[0].ts, None)
    for i in range(0, len(events), 1000):
        server.call(server.runtime.publish(events[i:i + 1000]))
    deadline = time.monotonic() + 120
    while server.runtime.pipeline.events_applied < len(events):
        assert time.monotonic() < deadline, "the replay was not applied"
        time.sleep(0.05)
    yield server
    server.close()


def snapshot(server: LiveServer, client: httpx.Client) -> dict[str, Any]:
    """What one client must not be able to change for everyone else."""
    pipeline = server.runtime.pipeline
    recent = pipeline.sessions.recent_sessions(5)
    return {
        "clock": server.runtime.now_ms(),
        "watermark": pipeline.sessions.watermark,
        "sessions": len(pipeline.sessions),
        "expired": pipeline.sessions_expired,
        "events": pipeline.events_applied,
        "shelf": client.get("/catalog/shelf", params={"limit": 40}).json(),
        "lists": [client.get(f"/sessions/{s}/recommendations").json() for s in recent],
    }


def wait_applied(server: LiveServer, n: int) -> None:
    deadline = time.monotonic() + 10
    while server.runtime.pipeline.events_applied < n:
        assert time.monotonic() < deadline, "events were not applied"
        time.sleep(0.01)


def test_a_wall_clock_or_2099_event_is_refused_and_changes_nothing(replayed: LiveServer) -> None:
    with httpx.Client(base_url=replayed.url, timeout=30, headers=SERVICE) as client:
        before = snapshot(replayed, client)
        assert before["clock"] < Y2099 and len(before["shelf"]) == 40
        assert all(len(lists[name]) == 20 for lists in before["lists"]
                   for name in ("clicks", "carts", "orders"))
        wall = int(time.time() * 1000)
        for ts in (wall, Y2099, before["clock"] - EVENT_PAST_MS - 1,
                   before["clock"] + EVENT_FUTURE_MS + 1):
            response = client.post("/events", json={"session": 99_000_001, "aid": 7,
                                                     "type": "orders", "ts": ts})
            assert response.status_code == 422
            (error,) = response.json()["detail"]
            assert error["field"] == "ts" and "stream's clock" in error["reason"]
            assert "omit ts" in error["reason"]
        # One bad event in a request of 10,000: none of them is applied.
        batch = [{"session": 99_000_002 + i, "aid": 7, "type": "orders"} for i in range(9_999)]
        response = client.post("/events", json=[*batch, {"session": 1, "aid": 7,
                                                          "type": "orders", "ts": Y2099}])
        assert response.status_code == 422
        assert response.json()["detail"][0]["index"] == 9_999
        time.sleep(0.5)
        assert snapshot(replayed, client) == before


def test_posted_events_are_stamped_by_the_clock_and_never_move_it(
        replayed: LiveServer) -> None:
    runtime = replayed.runtime
    with httpx.Client(base_url=replayed.url, timeout=30, headers=SERVICE) as client:
        clock = runtime.now_ms()
        applied = runtime.pipeline.events_applied
        posted = [{"session": 99_100_000, "aid": 11, "type": "clicks"},            # no ts
                  {"session": 99_100_000, "aid": 12, "type": "clicks",
                   "ts": clock + EVENT_FUTURE_MS},                                  # ahead
                  {"session": 99_100_001, "aid": 13, "type": "carts",
                   "ts": clock - EVENT_PAST_MS}]                                     # behind
        assert client.post("/events", json=posted).json() == {"accepted": 3}
        wait_applied(replayed, applied + 3)
        assert runtime.now_ms() == clock
        assert runtime.pipeline.sessions.watermark == clock
        stamped = runtime.pipeline.sessions.get(99_100_000)
        assert stamped is not None and [ts for _, ts, _ in stamped.recent] == [clock, clock]
        lists = client.get("/sessions/99100001/recommendations").json()
        assert lists["event_ts"] == clock - EVENT_PAST_MS
        assert all(len(lists[name]) == 20 for name in ("clicks", "carts", "orders"))


def test_without_a_replay_the_clock_is_the_wall_clock() -> None:
    server = LiveServer()
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=SERVICE) as client:
            wall = int(time.time() * 1000)
            ok = client.post("/events", json={"session": 1, "aid": 2, "type": "clicks",
                                              "ts": wall})
            assert ok.status_code == 202
            old = client.post("/events", json={"session": 1, "aid": 2, "type": "clicks",
                                               "ts": 1_659_304_800_000})
            assert old.status_code == 422 and old.json()["detail"][0]["field"] == "ts"
    finally:
        server.close()


def test_posted_events_never_shrink_the_lists(replayed: LiveServer) -> None:
    """A session of one event gets 20 items in each list (and so does one never seen)."""
    with httpx.Client(base_url=replayed.url, timeout=30, headers=SERVICE) as client:
        for session in (99_200_000, 99_200_001):
            client.post("/events", json={"session": session, "aid": 3, "type": "orders"})
        time.sleep(0.3)
        for session in (99_200_000, 99_200_001, 99_200_002):
            body = client.get(f"/sessions/{session}/recommendations").json()
            for name in ("clicks", "carts", "orders"):
                assert len(body[name]) == len(set(body[name])) == 20


def test_a_web_nodes_clock_is_a_replays_time_else_the_wall_clock() -> None:
    """The latest event the workers stored sets it during a replay of the past; live (or
    with a far-future event stored) it is the wall clock, which no posted event moves."""
    from distributed.web_backend import REPLAY_BEHIND_MS, StoreBackend
    from stream.pipeline import PipelineConfig

    backend = StoreBackend("redis://127.0.0.1:1/0", "kafka://127.0.0.1:1", "", "liverec",
                           PipelineConfig())
    wall = int(time.time() * 1000)
    for latest, expected in ((None, "wall"), (1_659_304_800_000, 1_659_304_800_000),
                             (wall - REPLAY_BEHIND_MS // 2, "wall"), (Y2099, "wall")):
        backend.store.latest_event_ts = lambda latest=latest: latest  # type: ignore[method-assign]
        backend._now = (0.0, None)  # no cached reading
        now = backend.now_ms()
        if expected == "wall":
            assert wall <= now <= int(time.time() * 1000)
        else:
            assert now == expected
