"""The API's documentation, served offline: ``/openapi.json`` with what FastAPI cannot list
(the plain ``POST /events`` route and the WebSocket), and ``/docs`` from the app's own
copies of Swagger UI (``web/static/vendor``, built by ``make setup``), never a CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from web.intake import EVENT_FUTURE_MS, EVENT_PAST_MS, MAX_EVENTS_PER_REQUEST
from web.live import MESSAGE_DOC

_ERRORS = "``{\"detail\": [{\"index\"?, \"field\", \"reason\"}]}``"
EVENTS_DOC = {"post": {
    "summary": "Post Events",
    "description": (
        "One event or a list: ``{\"session\", \"aid\", \"type\", \"ts\"?}``, as "
        "``application/json`` only. A shopper sends its session's token "
        "(``Authorization: Bearer``, from ``POST /sessions``) and posts only that session's "
        "events, within its event budget; a shop's backend sends the service key and may post "
        f"for any session, up to {MAX_EVENTS_PER_REQUEST:,} events a request. ts defaults to "
        f"the stream's clock; a given one must lie from {EVENT_PAST_MS // 60_000} min before "
        f"it to {EVENT_FUTURE_MS // 1000} s after it (a later one is stamped with the clock). "
        "All or nothing: one refused event refuses the request."),
    "security": [{"bearer": []}],
    "requestBody": {"required": True, "content": {"application/json": {}}},
    "responses": {
        "202": {"description": "Accepted: ``{\"accepted\": n}``"},
        "401": {"description": f"No or unknown credentials: {_ERRORS}"},
        "403": {"description": f"Another session's token, or a public session: {_ERRORS}"},
        "413": {"description": "Body larger than 4 MiB"},
        "415": {"description": "Not application/json"},
        "422": {"description": f"Invalid events: {_ERRORS}"},
        "429": {"description": "Rate or event budget spent: see ``Retry-After``"},
    },
}}
WEBSOCKET_DOC = {"get": {
    "summary": "Watch a session's lists (WebSocket)",
    "description": MESSAGE_DOC + " Refusals: 422 (bad id) and 403 (origin) as HTTP; after "
                   "the handshake close 4401 (no or bad token), 4403 (another session's "
                   "token), 4429 (too many sockets for this address or session), 4503 "
                   "(server full), 1008 (too many client messages), 1009 (frame too big).",
    "parameters": [
        {"name": "session", "in": "path", "required": True, "schema": {"type": "integer"}},
        {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "the session's token; public demo sessions need none"}],
    "responses": {"101": {"description": "Switching protocols: pushes follow"},
                  "403": {"description": "Origin not allowed"},
                  "422": {"description": "Not a session id"}},
}}


def document(app: FastAPI) -> None:
    """Add ``POST /events``, the WebSocket and the bearer scheme to ``/openapi.json``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["paths"]["/events"] = EVENTS_DOC
            schema["paths"]["/ws/sessions/{session}"] = WEBSOCKET_DOC
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a session's token, or the service key"}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def serve_docs(app: FastAPI, static: Path) -> None:
    """``/docs``: Swagger UI from the app's own files."""
    vendor = static / "vendor"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if not (vendor / "swagger-ui-bundle.js").exists():
            return HTMLResponse(
                "<!doctype html><title>liverec API</title><p>The interactive docs need the "
                "web assets (<code>make setup</code> builds them). The API schema is at "
                "<a href=\"/openapi.json\">/openapi.json</a>.</p>", status_code=503)
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="liverec API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg")
