"""The web app's protections in one place: credentials, limits, origins, response headers.

:class:`Security` is built once per process from the settings and handed to the app; the
routes ask it (``who may``, ``how much``) and count every refusal for ``/metrics``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.auth import Guard
from web.limits import Buckets, Connections

#: The page loads its own scripts, styles and fonts only, draws pictures as inline SVG (data:
#: URLs) and talks to its own origin; nobody may frame it.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
#: ``/docs``: Swagger UI runs an inline bootstrap script and styles of its own.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")


@dataclass
class Security:
    """Who may call the app and how much (see :class:`~liverec.settings.Settings`)."""

    guard: Guard
    origins: frozenset[str]
    """Origins allowed to open WebSockets besides the page's own."""
    posts: Buckets
    client_events: Buckets
    creates: Buckets
    reads: Buckets
    session_events: Buckets
    connections: Connections
    message_rate: float
    refused: Counter[str] = field(default_factory=Counter)
    """Refusals by reason (``rate_limited``, ``unauthorized``, ``forbidden``, ...)."""

    def origin_allowed(self, headers: Headers, secure: bool) -> bool:
        """A browser's ``Origin`` must be the page's own (same host) or one allowed; clients
        that send none are not browsers, so no other site can act through them."""
        origin = headers.get("origin")
        if origin is None:
            return True
        origin = origin.rstrip("/")
        host = headers.get("host", "")
        own = {f"https://{host}", f"http://{host}"} if not secure else {f"https://{host}"}
        return origin in own or origin in self.origins


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class SecurityHeaders:
    """Adds the page's security headers to every HTTP response (``/docs`` gets its own CSP)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in ("/docs", "/docs/oauth2-redirect", "/redoc")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = add_headers(message.get("headers", []), docs)
            await send(message)

        await self.app(scope, receive, with_headers)


def add_headers(headers: list[tuple[bytes, bytes]], docs: bool = False) -> list[tuple[bytes,
                                                                                     bytes]]:
    extra = HEADERS if not docs else [(b"content-security-policy", DOCS_CSP.encode()),
                                      *HEADERS[1:]]
    present = {name.lower() for name, _ in headers}
    return [*headers, *((n, v) for n, v in extra if n not in present)]
