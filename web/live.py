"""``WS /ws/sessions/{session}``: a session's lists now and on every change.

Checks before a socket is taken: the id (422) and the page's origin (403) are answered as
HTTP, like REST; credentials and capacity after the handshake, as close codes a browser's
``WebSocket`` can read (``4401`` no or bad token, ``4403`` another session's, ``4429`` too
many sockets for this address or session, ``4503`` the process is full).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

import orjson
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from stream.events import MAX_ID
from stream.pipeline import Recommendations
from web.auth import Access
from web.hub import RecommendationHub
from web.security import Security, client_address

log = logging.getLogger("liverec.web")

#: The WebSocket message, for the OpenAPI document and the docs.
MESSAGE_DOC = (
    "Text frames of JSON, one per change of the session's lists, newest only (a slow client "
    "skips versions): ``{\"session\", \"version\", \"event_ts\", \"public\", \"clicks\": "
    "[aid × 20], \"carts\": [...], \"orders\": [...], \"why\": {\"clicks\": [{\"source\", "
    "\"via\"} × 20], ...}}``. ``version`` counts the session's applied events: every applied "
    "event brings a message, even when the lists stay the same. ``source`` is one of "
    "you_viewed, you_carted, you_bought, viewed_with, bought_with, viewed_after, similar, "
    "popular_now, popular; ``via`` is the session's item behind it, or null. Private "
    "sessions need ``?token=``; the server reads no client messages but pings (at most "
    "a few KiB each).")
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_TOO_MANY, CLOSE_FULL = 4401, 4403, 4429, 4503


class Watchable(Protocol):
    async def recommendations(self, session: int) -> Recommendations: ...

    async def watch(self, session: int) -> None: ...


def push_json(recs: Recommendations, public: bool) -> dict[str, Any]:
    obj = recs.to_json()
    obj["public"] = public
    return obj


def parse_session(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()) or len(text) > 20:  # "²" is a digit too
        return None
    value = int(text)
    return value if value <= MAX_ID else None


async def watch_session(websocket: WebSocket, backend: Watchable, hub: RecommendationHub,
                        security: Security) -> None:
    """Serve one client watching one session until either side closes."""
    raw = websocket.path_params.get("session", "")
    session = parse_session(raw)
    if session is None:
        security.refused["invalid"] += 1
        await websocket.send_denial_response(JSONResponse(status_code=422, content={
            "detail": [{"field": "session", "reason":
                        f"{raw[:40]!r} is not a session id (an integer 0..{MAX_ID})"}]}))
        return
    secure = websocket.url.scheme == "wss" or websocket.headers.get(
        "x-forwarded-proto") == "https"
    if not security.origin_allowed(websocket.headers, secure):
        security.refused["origin"] += 1
        await websocket.send_denial_response(JSONResponse(status_code=403, content={
            "detail": [{"field": "origin", "reason": "this page's origin may not subscribe; "
                        "see LIVEREC_ALLOWED_ORIGINS"}]}))
        return
    access = security.guard.read(session, websocket.query_params.get("token"))
    public = security.guard.is_public(session)
    client = client_address(websocket.scope)
    await websocket.accept()
    if access is not Access.GRANTED:
        security.refused["unauthorized" if access is not Access.OTHER else "forbidden"] += 1
        code = CLOSE_FORBIDDEN if access is Access.OTHER else CLOSE_UNAUTHORIZED
        reason = ("this token belongs to another session" if access is Access.OTHER
                  else "a private session: add ?token= (POST /sessions gives one)")
        await websocket.close(code=code, reason=reason)
        return
    tabs = None if public else session
    refused = security.connections.admit(client, tabs)
    if refused is not None:
        security.refused["connections"] += 1
        full = security.connections.open >= security.connections.total
        await websocket.close(code=CLOSE_FULL if full else CLOSE_TOO_MANY, reason=refused)
        return
    try:
        await _serve(websocket, session, public, backend, hub, security.message_rate)
    finally:
        security.connections.release(client, tabs)


async def _serve(websocket: WebSocket, session: int, public: bool, backend: Watchable,
                 hub: RecommendationHub, message_rate: float) -> None:
    """Push the session's lists until the client goes. One task per connection, this one,
    reads the socket; pushes go out from a short task started by the hub's wake-up, so an
    idle client holds no waiting task (a fifth of a connection's memory, docs/benchmarks.md)."""
    sending: asyncio.Task[None] | None = None

    async def send_latest() -> None:
        with contextlib.suppress(Exception):  # the client went: the reader sees it
            while (taken := sub.take()) is not None:
                recs, origin = taken
                await websocket.send_text(orjson.dumps(push_json(recs, public)).decode())
                hub.record_push(origin)

    def wake() -> None:
        nonlocal sending
        if sending is None or sending.done():
            sending = asyncio.get_running_loop().create_task(send_latest())

    sub = hub.subscribe(session, wake)
    try:
        await backend.watch(session)
        if sub.latest is None:  # a hub fed from elsewhere: seed it with the current lists
            hub.offer(await backend.recommendations(session))
    except Exception:  # the store is unreachable: tell the client, keep no subscription
        hub.unsubscribe(sub)
        await websocket.close(code=1011, reason="recommendations unavailable")
        raise
    # Clients may send pings and small messages; a flood closes the socket.
    burst, level, then = 30.0, 30.0, time.monotonic()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            now = time.monotonic()
            level = min(burst, level + (now - then) * message_rate) - 1.0
            then = now
            if level < 0:
                await websocket.close(code=1008, reason="too many client messages")
                return
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(sub)
        sub.wake = None  # it closes over the subscription: a cycle only a full collection frees
        if sending is not None and not sending.done():
            sending.cancel()
