"""The FastAPI app: REST and WebSocket access to live recommendations, and the shop page.

The app holds no recommender state of its own: a :class:`Backend` gives it lists, takes events
and reports figures; a :class:`~web.hub.RecommendationHub` pushes changes to WebSocket clients.
The embedded runtime backs it with the in-process pipeline; a distributed one with the shared
store, without the app changing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path as FilePath
from typing import Annotated, Any, Protocol

import orjson
from fastapi import FastAPI, HTTPException, Path, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from stream.events import MAX_ID, Event
from stream.metrics import prequential_families
from stream.pipeline import Recommendations
from stream.switch import DESCRIPTIONS
from web import apidocs
from web.auth import Access, bearer_of
from web.catalog import CATEGORIES, Catalog
from web.hub import RecommendationHub
from web.intake import ACCESS_STATUS, make_intake, read_body, refusal, too_many
from web.live import push_json, watch_session
from web.security import Security, SecurityHeaders, client_address

STATIC = FilePath(__file__).parent / "static"
#: A session id in a path: what an event's ``session`` may be.
SessionId = Annotated[int, Path(ge=0, le=MAX_ID, description="session id")]
WS_PREFIX = "/ws/sessions/"
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

    def ready(self) -> dict[str, str | None]:
        """Each readiness check by name: None when it passes, else why not."""

    def methods(self) -> tuple[str, list[str]]:
        """The method that serves sessions by default, and all a session may choose."""

    async def choose_method(self, session: int, method: str) -> Recommendations:
        """Serve ``session`` by ``method`` from now on and return its lists so made;
        ``ValueError`` when this runtime does not serve that method."""

    def now_ms(self) -> int:
        """The stream's clock: the default ``ts`` of posted events, and what a posted ``ts``
        must be near. Posted events never move it."""


class _Metrics:
    """A Prometheus collector that reads live figures at scrape time."""

    def __init__(self, hub: RecommendationHub, api: dict[str, int],
                 security: Security) -> None:
        self.hub, self.api, self.security = hub, api, security
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
        refused = CounterMetricFamily("liverec_refused", "Requests and sockets refused, by "
                                      "reason (rate_limited, unauthorized, forbidden, ...)",
                                      labels=["reason"])
        for reason, count in sorted(self.security.refused.items()):
            refused.add_metric([reason], count)
        yield refused
        yield GaugeMetricFamily("liverec_connections", "Open WebSockets counted against the "
                                "caps", value=self.security.connections.open)
        yield GaugeMetricFamily("liverec_subscribers", "Open WebSocket subscriptions",
                                value=self.hub.subscribers())
        if "sessions" in stats:  # a web node without a worker reporting measures none
            yield GaugeMetricFamily("liverec_sessions", "Sessions held in state",
                                    value=stats["sessions"])
        yield from prequential_families(stats)
        latency = GaugeMetricFamily("liverec_push_latency_ms",
                                    "Batch start to WebSocket send, recent window",
                                    labels=["quantile"])
        for name, value in self.hub.latency_percentiles().items():
            if value is not None:
                latency.add_metric([name.replace("p", "0.")], value)
        yield latency


class LiverecApp(FastAPI):
    """The FastAPI app with event intake in front of its middleware stack.

    ``POST /events`` is the hot path: every event a page or a shop's backend posts. FastAPI
    and Starlette wrap each request in six middlewares (telemetry, body limit, errors, exit
    stack, routing); at 1,000 events/s they took about 40 % of a web node's main thread,
    more than the handler. So :meth:`__call__` hands that one request straight to :attr:`intake`,
    which answers its own errors; everything else goes through the stack as usual.
    """

    intake: Callable[[Request], Awaitable[Response]] | None = None
    watcher: Callable[[WebSocket], Awaitable[None]] | None = None
    """``WS /ws/sessions/{session}``, also ahead of the stack: every open connection kept
    FastAPI's and Starlette's per-request coroutines and exit stacks suspended, 11 KiB of
    its 40 (docs/benchmarks.md)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.watcher is not None and scope["type"] == "websocket"
                and scope["path"].startswith(WS_PREFIX) and not scope.get("root_path")):
            scope["path_params"] = {"session": scope["path"][len(WS_PREFIX):]}
            await self.watcher(WebSocket(scope, receive, send))
            return
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


def create_app(backend: Backend, hub: RecommendationHub, catalog: Catalog | None,
               security: Security) -> LiverecApp:
    """Build the app over a backend and the hub that pushes its changes; ``security``: who
    may call it and how much (``liverec.runtime.security`` builds it from the settings)."""
    catalog = catalog or Catalog()
    guard = security.guard
    item = catalog.item
    app = LiverecApp(title="liverec", summary="Live next-click, cart and order recommendations",
                     docs_url=None, redoc_url=None)
    app.add_middleware(SecurityHeaders)
    api = {"accepted": 0, "rejected": 0}
    registry = CollectorRegistry()
    collector = _Metrics(hub, api, security)
    registry.register(collector)  # type: ignore[arg-type]
    app.state.backend, app.state.hub, app.state.security = backend, hub, security

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = backend.ready()
        ready = all(reason is None for reason in checks.values())
        return JSONResponse({"ready": ready, "checks": {name: reason or "ok" for name, reason
                                                        in checks.items()}},
                            status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        collector.stats = await backend.stats()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/sessions", status_code=201, responses={429: {"description": "Too many new "
              "sessions from this address: see Retry-After"}})
    async def create_session(request: Request) -> Any:
        """A new shopper session and its token: send it as ``Authorization: Bearer`` to read
        the session and post its events, and as ``?token=`` on its WebSocket."""
        wait = security.creates.take(client_address(request.scope))
        if wait:
            security.refused["rate_limited"] += 1
            return too_many("too many new sessions from this address", wait)
        session, token = guard.issue()
        return {"session": session, "token": token}

    @app.get("/sessions/{session}/recommendations",
             responses={401: {"description": "A private session, and no or a bad token"},
                        403: {"description": "Another session's token"}})
    async def get_recommendations(session: SessionId, request: Request) -> Any:
        """The session's lists (``why`` says where each item comes from); a private
        session's need its token (``Authorization: Bearer``)."""
        wait = security.reads.take(client_address(request.scope))
        if wait:
            security.refused["rate_limited"] += 1
            return too_many("too many reads from this address", wait)
        access = guard.read(session, bearer_of(request.headers.get("authorization")))
        if access is not Access.GRANTED:
            security.refused["forbidden" if access is Access.OTHER else "unauthorized"] += 1
            status = 403 if access is Access.OTHER else 401
            return JSONResponse(status_code=status, headers={"WWW-Authenticate": "Bearer"},
                                content={"detail": [{"field": "authorization", "reason":
                                         "another session's token" if status == 403 else
                                         "a private session: send its token"}]})
        return push_json(await backend.recommendations(session), guard.is_public(session))

    @app.get("/methods")
    async def methods() -> dict[str, Any]:
        """The methods a shopper may pick for their own session (the first is the default)."""
        default, names = backend.methods()
        return {"default": default, "methods": [
            {"name": n, "description": DESCRIPTIONS.get(n, n)} for n in names]}

    @app.put("/sessions/{session}/method",
             responses={401: {"description": "No or a bad token"},
                        403: {"description": "Another session's, or a public session"},
                        422: {"description": "Not a method this server serves"}},
             openapi_extra={"requestBody": {"content": {"application/json": {"schema": {
                 "type": "object", "required": ["method"], "additionalProperties": False,
                 "properties": {"method": {"type": "string"}}}}}}})
    async def choose_method(session: SessionId, request: Request) -> Any:
        """Serve your own session by another method (``GET /methods``); its lists are
        answered and pushed at once. Every method keeps learning from every event."""
        wait = security.reads.take(client_address(request.scope))
        if wait:
            security.refused["rate_limited"] += 1
            return too_many("too many requests from this address", wait)
        access = guard.write(session, bearer_of(request.headers.get("authorization")))
        if access is not Access.GRANTED:
            status = ACCESS_STATUS[access]
            security.refused["forbidden" if status == 403 else "unauthorized"] += 1
            reason = {Access.OTHER: "another session's token",
                      Access.READ_ONLY: "a public session: only its own shopper chooses"
                      }.get(access, "send the session's token")
            return refusal(status, [{"field": "authorization", "reason": reason}],
                           {"WWW-Authenticate": "Bearer"})
        body = await read_body(request, 1024)
        if body is None:
            security.refused["too_large"] += 1
            return refusal(413, [{"field": "body", "reason": "at most 1,024 bytes"}])
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict) or set(obj) != {"method"} or not isinstance(
                obj["method"], str):
            security.refused["invalid"] += 1
            return refusal(422, [{"field": "method", "reason": 'send {"method": NAME}'}])
        try:
            recs = await backend.choose_method(session, obj["method"][:64])
        except ValueError as exc:
            security.refused["invalid"] += 1
            return refusal(422, [{"field": "method", "reason": str(exc)}])
        return push_json(recs, guard.is_public(session))

    intake = make_intake(backend, security, api)
    app.intake = intake
    # Also routed: under a root path (a mount) the front door does not take it.
    app.router.routes.append(Route("/events", intake, methods=["POST"]))
    apidocs.document(app)
    apidocs.serve_docs(app, STATIC)

    @app.get("/sessions/live")
    async def live_sessions(limit: int = Query(4, ge=1, le=50)) -> list[int]:
        """Public demo sessions (replayed shoppers) active lately, most recent first."""
        recent = await backend.live_sessions(limit * 4)
        return [s for s in recent if guard.is_public(s)][:limit]

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

    @app.websocket(WS_PREFIX + "{session}")  # under a root path; else LiverecApp takes it
    async def watch(websocket: WebSocket) -> None:
        await watch_session(websocket, backend, hub, security)

    app.watcher = watch

    return app
