"""The FastAPI app: REST and WebSocket access to live recommendations, and the shop page.

The app holds no recommender state of its own: a :class:`Backend` gives it lists, takes events
and reports figures; a :class:`~web.hub.RecommendationHub` pushes changes to WebSocket clients.
The embedded runtime backs it with the in-process pipeline; a distributed one with the shared
store, without the app changing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Protocol

import orjson
from fastapi import FastAPI, HTTPException, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from stream.events import MAX_ID, Event, EventError, parse_event
from stream.metrics import prequential_families
from stream.pipeline import Recommendations
from web.catalog import CATEGORIES, Catalog
from web.hub import RecommendationHub

STATIC = FilePath(__file__).parent / "static"
#: A session id in a path: what an event's ``session`` may be.
SessionId = Annotated[int, Path(ge=0, le=MAX_ID, description="session id")]
#: Most events one POST may carry.
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
log = logging.getLogger("liverec.web")


class Backend(Protocol):
    """What the web app needs from a runtime (in-process, or the shared store)."""

    async def recommendations(self, session: int) -> Recommendations: ...

    async def publish(self, events: Sequence[Event]) -> None: ...

    async def watch(self, session: int) -> None:
        """A client here watches the session: its changes must reach the hub."""

    async def live_sessions(self, limit: int) -> list[int]:
        """Recently active sessions (e.g. being replayed), most recent first."""

    async def popular_items(self, limit: int) -> list[int]:
        """Items for the storefront shelf."""

    async def stats(self) -> dict[str, Any]:
        """Figures for the operations view and /metrics: at least ``events``."""

    def ready(self) -> bool: ...

    def now_ms(self) -> int:
        """The stream's clock: the default ``ts`` of posted events, and what a posted ``ts``
        must be near. Posted events never move it."""


class _Metrics:
    """A Prometheus collector that reads live figures at scrape time."""

    def __init__(self, hub: RecommendationHub, api: dict[str, int]) -> None:
        self.hub, self.api = hub, api
        self.stats: dict[str, Any] = {}
        """The backend's figures, read just before each scrape."""

    def collect(self) -> Any:
        stats = self.stats
        yield CounterMetricFamily("liverec_events_processed", "Events applied by the pipeline",
                                  value=stats.get("events", 0))
        yield CounterMetricFamily("liverec_events_accepted", "Events accepted by POST /events",
                                  value=self.api["accepted"])
        yield CounterMetricFamily("liverec_events_rejected", "Events rejected by POST /events",
                                  value=self.api["rejected"])
        yield CounterMetricFamily("liverec_pushes", "Recommendation pushes sent to clients",
                                  value=self.hub.pushes)
        yield GaugeMetricFamily("liverec_subscribers", "Open WebSocket subscriptions",
                                value=self.hub.subscribers())
        yield GaugeMetricFamily("liverec_sessions", "Sessions held in state",
                                value=stats.get("sessions", 0))
        yield from prequential_families(stats)
        latency = GaugeMetricFamily("liverec_push_latency_ms",
                                    "Batch start to WebSocket send, recent window",
                                    labels=["quantile"])
        for name, value in self.hub.latency_percentiles().items():
            if value is not None:
                latency.add_metric([name.replace("p", "0.")], value)
        yield latency


def _ts_reason(ts: int, now: int) -> str:
    """Why a posted event's time is refused, in words a client's developer can act on."""
    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    return (f"{ts} ({when(ts)}) is outside the accepted window around the stream's clock, "
            f"{now} ({when(now)}): from {EVENT_PAST_MS // 60_000} min before it to "
            f"{EVENT_FUTURE_MS // 1000} s after; omit ts and the server stamps the event")


def _reject(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": errors})


def _document_events(app: FastAPI) -> None:
    """Put ``POST /events`` (a plain route, which FastAPI does not list) in ``/openapi.json``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["paths"]["/events"] = {"post": {
                "summary": "Post Events",
                "description": "One event or a list (at most "
                               f"{MAX_EVENTS_PER_REQUEST:,}): ``{{\"session\", \"aid\", "
                               "\"type\", \"ts\"?}}``; ts defaults to the stream's clock, and a "
                               "given ts must lie from 1 h before it to 1 min after it "
                               "(a later one is stamped with the clock). All or nothing: "
                               "one invalid event rejects the request (422, each error's "
                               "index, field and reason).",
                "requestBody": {"required": True, "content": {"application/json": {}}},
                "responses": {"202": {"description": "Accepted: ``{\"accepted\": n}``"},
                              "422": {"description": "Rejected: ``{\"detail\": [...]}``"}},
            }}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class LiverecApp(FastAPI):
    """The FastAPI app with event intake in front of its middleware stack.

    ``POST /events`` is the hot path: every event a page or a shop's backend posts. FastAPI
    and Starlette wrap each request in six middlewares (telemetry, body limit, errors, exit
    stack, routing); at 1,000 events/s they took about 40 % of a web node's main thread,
    more than the handler. So :meth:`__call__` hands that one request straight to :attr:`intake`,
    which answers its own errors; everything else goes through the stack as usual.
    """

    intake: Callable[[Request], Awaitable[Response]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.intake is not None and scope["type"] == "http" and scope["path"] == "/events"
                and scope["method"] == "POST" and not scope.get("root_path")):
            try:
                response = await self.intake(Request(scope, receive))
            except Exception:
                log.exception("POST /events failed")
                response = JSONResponse({"detail": "Internal Server Error"}, status_code=500)
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None once it passes ``limit`` bytes (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(backend: Backend, hub: RecommendationHub,
               catalog: Catalog | None = None) -> LiverecApp:
    """Build the app over a backend and the hub that pushes its changes."""
    catalog = catalog or Catalog()
    item = catalog.item
    app = LiverecApp(title="liverec", summary="Live next-click, cart and order recommendations")
    api = {"accepted": 0, "rejected": 0}
    registry = CollectorRegistry()
    collector = _Metrics(hub, api)
    registry.register(collector)  # type: ignore[arg-type]
    app.state.backend, app.state.hub = backend, hub

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = backend.ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        collector.stats = await backend.stats()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/sessions/{session}/recommendations")
    async def get_recommendations(session: SessionId) -> dict[str, Any]:
        return (await backend.recommendations(session)).to_json()

    async def post_events(request: Request) -> Response:
        """One event or a list: ``{"session", "aid", "type", "ts"?}``; ts defaults to the
        stream's clock (:meth:`Backend.now_ms`), and a given one must be near it.

        Served by :class:`LiverecApp` ahead of the middleware stack, and not a FastAPI route:
        FastAPI's per-route machinery (dependencies, response model, telemetry) cost about
        120 of its 180 µs per request for nothing this handler uses. Its entry in the OpenAPI
        schema is added by hand (:func:`_document_events`).
        """
        raw = await _read_body(request, MAX_BODY_BYTES)
        if raw is None:
            api["rejected"] += 1
            return JSONResponse(status_code=413, content={"detail": [
                {"field": "body", "reason": f"larger than {MAX_BODY_BYTES:,} bytes"}]})
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            api["rejected"] += 1
            return _reject([{"field": "body", "reason": f"not valid JSON: {exc}"}])
        items = body if isinstance(body, list) else [body]
        if len(items) > MAX_EVENTS_PER_REQUEST:
            api["rejected"] += len(items)
            return _reject([{"field": "body", "reason":
                             f"{len(items)} events; at most {MAX_EVENTS_PER_REQUEST} per request"}])
        now = backend.now_ms()
        events, errors = [], []
        for index, obj in enumerate(items):
            try:
                event = parse_event(obj, default_ts=now)
            except EventError as exc:
                errors.append({"index": index, "field": exc.field, "reason": exc.reason})
                continue
            if event.ts > now:
                if event.ts > now + EVENT_FUTURE_MS:
                    errors.append({"index": index, "field": "ts",
                                   "reason": _ts_reason(event.ts, now)})
                    continue
                event = event._replace(ts=now)
            elif event.ts < now - EVENT_PAST_MS:
                errors.append({"index": index, "field": "ts",
                               "reason": _ts_reason(event.ts, now)})
                continue
            events.append(event)
        if errors:  # all or nothing: a client retrying a fixed batch must not duplicate events
            api["rejected"] += len(items)
            return _reject(errors)
        await backend.publish(events)
        api["accepted"] += len(events)
        return Response(orjson.dumps({"accepted": len(events)}), status_code=202,
                        media_type="application/json")

    app.intake = post_events
    # Also routed: under a root path (a mount) the front door does not take it.
    app.router.routes.append(Route("/events", post_events, methods=["POST"]))
    _document_events(app)

    @app.get("/sessions/live")
    async def live_sessions(limit: int = Query(4, ge=1, le=50)) -> list[int]:
        return await backend.live_sessions(limit)

    @app.get("/catalog/items")
    async def catalog_items(aids: str = Query(..., description="comma-separated aids")) -> Any:
        try:
            wanted = [int(a) for a in aids.split(",") if a.strip()][:500]
        except ValueError:
            raise HTTPException(422, "aids must be comma-separated integers") from None
        return [item(a).to_json() for a in wanted]

    @app.get("/catalog/categories")
    async def catalog_categories() -> list[str]:
        return list(CATEGORIES)

    @app.get("/catalog/shelf")
    async def catalog_shelf(limit: int = Query(24, ge=1, le=200),
                            category: str | None = None) -> Any:
        if category is not None and category not in CATEGORIES:
            raise HTTPException(422, f"unknown category; expected one of {list(CATEGORIES)}")
        aids = await backend.popular_items(limit * (len(CATEGORIES) if category else 1) * 2)
        items = [item(a) for a in aids if category is None or item(a).category == category]
        return [i.to_json() for i in items[:limit]]

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {**(await backend.stats()), "pushes": hub.pushes, "subscribers": hub.subscribers(),
                "latency_ms": hub.latency_percentiles(), **api}

    @app.websocket("/ws/sessions/{session}")
    async def watch_session(websocket: WebSocket, session: SessionId) -> None:
        """Push the session's lists now and on every change, latest value only."""
        await websocket.accept()
        sub = hub.subscribe(session)
        try:
            await backend.watch(session)
            if sub.latest is None:  # a hub fed from elsewhere: seed it with the current lists
                hub.offer(await backend.recommendations(session))
        except Exception:  # the store is unreachable: tell the client, keep no subscription
            hub.unsubscribe(sub)
            await websocket.close(code=1011, reason="recommendations unavailable")
            raise

        async def send() -> None:
            while True:
                recs, origin = await sub.next()
                await websocket.send_text(orjson.dumps(recs.to_json()).decode())
                hub.record_push(origin)

        async def receive() -> None:
            while True:  # clients may send anything (pings); we only watch for the close
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return

        tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except WebSocketDisconnect:
            pass
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                    await task
            hub.unsubscribe(sub)

    return app
