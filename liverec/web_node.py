"""``liverec web``: a stateless web node of the distributed runtime, wired.

The backend (lists from Redis, events to Kafka, announcements into the hub) is
:class:`distributed.web_backend.StoreBackend`; this module serves the app over it.
"""

from __future__ import annotations

import asyncio
import contextlib

from distributed.web_backend import StoreBackend
from liverec.collector import keep_collections_short
from liverec.demo import bind, page_url
from liverec.logs import start_line
from liverec.runtime import security
from liverec.server import make_server
from liverec.settings import Settings
from stream.pipeline import PipelineConfig
from web.app import create_app
from web.auth import new_secret


async def run_web(settings: Settings, config: PipelineConfig) -> int:
    """Serve a web node until Ctrl-C or SIGTERM."""
    backend = StoreBackend(settings.store, settings.bus, settings.topic_prefix,
                           settings.app_id, config)
    secret = settings.secret or backend.store.shared_secret(new_secret())
    app = create_app(backend, backend.hub, None, security(settings, secret))
    sock = bind(settings.host, settings.port)
    server = make_server(app, settings.host, settings.port,
                         ws_max_size=settings.ws_max_message_bytes)
    tasks = [asyncio.create_task(backend.listen(), name="lists"),
             asyncio.create_task(backend.renew_watches(), name="watches"),
             asyncio.create_task(backend.watch_kafka(), name="kafka"),
             asyncio.create_task(keep_collections_short(), name="gc")]
    serve = asyncio.create_task(server.serve(sockets=[sock]), name="web")
    listening = asyncio.create_task(server.listening.wait())
    await asyncio.wait([serve, listening], return_when=asyncio.FIRST_COMPLETED)
    if not serve.done():
        start_line("liverec.web", f"liverec web: serving "
                   f"{page_url(settings.host, sock.getsockname()[1])} (store {settings.store}, "
                   f"bus {settings.bus})", settings.log_format)
        await serve
    listening.cancel()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await backend.close()
    serve.result()
    return 0
