"""``POST /events``: the checks every posted event passes before it reaches the bus.

In order, cheapest first, and all or nothing (a client retrying a fixed batch must not
duplicate events): the client's request rate, the content type, credentials, the body's
size and JSON, each event's fields and time, who may post into each session, and the
session's event budget. Each refusal names the field and the reason and is counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from stream.events import Event, EventError, parse_event
from web.auth import Access, bearer_of
from web.limits import retry_after
from web.security import HEADERS, Security, add_headers, client_address

#: Most events one POST may carry (the service key's; a shopper's is the session budget).
MAX_EVENTS_PER_REQUEST = 10_000
#: Largest body ``POST /events`` reads: the most events, about 100 bytes each, and room.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: A posted event's ``ts`` may be this far behind the stream's clock (a client that queued
#: events for a while) ...
EVENT_PAST_MS = 3_600_000
#: ... or this far ahead of it (clocks of two machines disagree); it is then stamped with the
#: clock itself, so that no request moves the stream's time (which expires sessions and ages
#: popularity) past where the server has it.
EVENT_FUTURE_MS = 60_000


class Sink(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...

    def now_ms(self) -> int: ...


def refusal(status: int, errors: list[dict[str, Any]],
            headers: dict[str, str] | None = None) -> JSONResponse:
    response = JSONResponse(status_code=status, content={"detail": errors}, headers=headers)
    response.raw_headers = add_headers(response.raw_headers)
    return response


def too_many(reason: str, wait: float, field: str = "client") -> JSONResponse:
    """429 with the seconds to wait."""
    return refusal(429, [{"field": field, "reason": reason}],
                   {"Retry-After": retry_after(wait)})


def ts_reason(ts: int, now: int) -> str:
    """Why a posted event's time is refused, in words a client's developer can act on."""
    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    return (f"{ts} ({when(ts)}) is outside the accepted window around the stream's clock, "
            f"{now} ({when(now)}): from {EVENT_PAST_MS // 60_000} min before it to "
            f"{EVENT_FUTURE_MS // 1000} s after; omit ts and the server stamps the event")


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None once it passes ``limit`` bytes (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


#: The status a refused access answers with (401: who are you; 403: not yours).
ACCESS_STATUS = {Access.MISSING: 401, Access.INVALID: 401, Access.OTHER: 403,
                  Access.READ_ONLY: 403}
_ACCESS_REASON = {
    Access.MISSING: "posting events needs the session's token or the service key "
                    "(Authorization: Bearer ...); POST /sessions gives a new session one",
    Access.INVALID: "not a token this server issued (or its secret changed): "
                    "POST /sessions for a new session",
    Access.OTHER: "this token belongs to another session",
    Access.READ_ONLY: "a public demo session is read-only",
}


def make_intake(sink: Sink, security: Security,
                counts: dict[str, int]) -> Callable[[Request], Awaitable[Response]]:
    """The ``POST /events`` handler; ``counts`` gets ``accepted`` and ``rejected`` events."""
    guard = security.guard

    def refuse(why: str, status: int, errors: list[dict[str, Any]], events: int = 1,
               headers: dict[str, str] | None = None) -> JSONResponse:
        counts["rejected"] += events
        security.refused[why] += 1
        return refusal(status, errors, headers)

    async def post_events(request: Request) -> Response:
        client = client_address(request.scope)
        wait = security.posts.take(client)
        if wait:
            return refuse("rate_limited", 429, [{"field": "client", "reason":
                          "too many requests from this address; slow down"}],
                          headers={"Retry-After": retry_after(wait)})
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            # A form or text/plain post needs no preflight: any web page could send one.
            return refuse("media_type", 415, [{"field": "content-type", "reason":
                          f"{media or 'none'}; send application/json"}])
        bearer = bearer_of(request.headers.get("authorization"))
        service = guard.is_service(bearer)
        owner = None if service else guard.bearer_session(bearer)
        if not service and owner is None:
            access = Access.INVALID if bearer else Access.MISSING
            return refuse("unauthorized", 401, [{"field": "authorization",
                          "reason": _ACCESS_REASON[access]}],
                          headers={"WWW-Authenticate": "Bearer"})
        raw = await read_body(request, MAX_BODY_BYTES)
        if raw is None:
            return refuse("too_large", 413, [{"field": "body",
                          "reason": f"larger than {MAX_BODY_BYTES:,} bytes"}])
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return refuse("invalid", 422, [{"field": "body", "reason": f"not valid JSON: {exc}"}])
        items = body if isinstance(body, list) else [body]
        most = MAX_EVENTS_PER_REQUEST if service else security.session_events.burst
        if len(items) > most:
            return refuse("invalid", 422, [{"field": "body", "reason":
                          f"{len(items)} events; at most {int(most):,} per request"}],
                          len(items))
        now = sink.now_ms()
        events: list[Event] = []
        errors: list[dict[str, Any]] = []
        forbidden = False
        for index, obj in enumerate(items):
            try:
                event = parse_event(obj, default_ts=now)
            except EventError as exc:
                errors.append({"index": index, "field": exc.field, "reason": exc.reason})
                continue
            if event.ts > now:
                if event.ts > now + EVENT_FUTURE_MS:
                    errors.append({"index": index, "field": "ts",
                                   "reason": ts_reason(event.ts, now)})
                    continue
                event = event._replace(ts=now)
            elif event.ts < now - EVENT_PAST_MS:
                errors.append({"index": index, "field": "ts", "reason": ts_reason(event.ts, now)})
                continue
            if not service:
                access = guard.write(event.session, bearer)
                if access is not Access.GRANTED:
                    forbidden = True
                    errors.append({"index": index, "field": "session",
                                   "reason": _ACCESS_REASON[access]})
                    continue
            events.append(event)
        if errors:
            return refuse("forbidden" if forbidden else "invalid", 403 if forbidden else 422,
                          errors, len(items))
        if owner is not None and events:
            # Both budgets are checked before either is spent: a refused request costs none.
            for bucket, key, field, whose in (
                    (security.session_events, owner, "session", "this session's"),
                    (security.client_events, client, "client", "this address's")):
                wait = bucket.wait(key, len(events))
                if wait:
                    bucket.refused += 1
                    return refuse("rate_limited", 429, [{"field": field, "reason":
                                  f"{whose} event budget is spent ({bucket.rate:g} events/s)"}],
                                  len(items), {"Retry-After": retry_after(wait)})
            security.session_events.take(owner, len(events))
            security.client_events.take(client, len(events))
        await sink.publish(events)
        counts["accepted"] += len(events)
        response = Response(orjson.dumps({"accepted": len(events)}), status_code=202,
                            media_type="application/json")
        response.raw_headers.extend(HEADERS)  # the hot path: none of them is set yet
        return response

    return post_events
