"""WebSocket pushes with a real client on a real socket."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import websockets

from stream.events import CARTS, CLICKS, Event

T0 = 1_659_304_800_000


async def receive(ws: websockets.ClientConnection, wait: float = 5.0) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), wait))  # type: ignore[no-any-return]


async def test_subscribing_pushes_the_current_lists_at_once(live_server) -> None:  # type: ignore[no-untyped-def]
    async with websockets.connect(f"{live_server.ws_url}/ws/sessions/11") as ws:
        first = await receive(ws)
    assert first["session"] == 11 and first["version"] == 0
    assert set(first) == {"session", "clicks", "carts", "orders", "version", "event_ts", "why",
                          "public", "method"}


async def test_an_event_pushes_the_changed_lists(live_server) -> None:  # type: ignore[no-untyped-def]
    async with websockets.connect(f"{live_server.ws_url}/ws/sessions/11") as ws:
        await receive(ws)
        live_server.call(live_server.runtime.publish([Event(11, 500, T0, CLICKS)]))
        pushed = await receive(ws)
        assert pushed["version"] == 1 and pushed["clicks"][0] == 500
        live_server.call(live_server.runtime.publish([Event(11, 501, T0 + 1, CARTS)]))
        pushed = await receive(ws)
        assert pushed["version"] == 2 and pushed["carts"][:2] == [501, 500]


async def test_events_of_other_sessions_push_nothing(live_server) -> None:  # type: ignore[no-untyped-def]
    async with websockets.connect(f"{live_server.ws_url}/ws/sessions/12") as ws:
        await receive(ws)
        live_server.call(live_server.runtime.publish([Event(13, 1, T0, CLICKS)]))
        try:
            extra = await receive(ws, wait=0.3)
        except TimeoutError:
            extra = None
        assert extra is None


async def test_every_subscriber_of_a_session_gets_the_push(live_server) -> None:  # type: ignore[no-untyped-def]
    url = f"{live_server.ws_url}/ws/sessions/14"
    async with websockets.connect(url) as a, websockets.connect(url) as b:
        await receive(a), await receive(b)
        live_server.call(live_server.runtime.publish([Event(14, 7, T0, CLICKS)]))
        assert (await receive(a))["version"] == (await receive(b))["version"] == 1


async def test_disconnecting_releases_the_subscription(live_server) -> None:  # type: ignore[no-untyped-def]
    async with websockets.connect(f"{live_server.ws_url}/ws/sessions/16") as ws:
        await receive(ws)
        assert live_server.runtime.hub.subscribers() == 1
    for _ in range(100):
        if live_server.runtime.hub.subscribers() == 0:
            break
        await asyncio.sleep(0.02)
    hub = live_server.runtime.hub
    assert hub.subscribers() == 0 and 16 not in hub.watched()


async def test_a_websocket_for_an_invalid_session_is_refused(live_server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"{live_server.ws_url}/ws/sessions/abc"):
            pass
