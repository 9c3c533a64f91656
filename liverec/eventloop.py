"""The event loop of the serving commands (``demo``, ``web``): uvloop where it is installed.

A web node handles each event several times on its loop (the POST, its bus send, the push
to every watching client), so the loop's own cost is a large part of each event's CPU.
uvloop (libuv, in C) does the same work for less. With httptools as uvicorn's HTTP parser and
a plain route for ``POST /events``, the demo's push p50 at 1,000 posted events/s on 2 cores
went from 0.8 s (falling behind) to a few ms; uvloop's own share is the smaller one
(``docs/benchmarks.md``).
``LIVEREC_EVENT_LOOP=asyncio`` keeps the standard loop (to compare, or to debug).

Workers stay on asyncio's loop: their time goes into the pipeline, not the loop, and their
throughput measured the same on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
LoopName = Literal["auto", "uvloop", "asyncio"]


def loop_factory(name: LoopName) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop called ``name``; ``None`` for asyncio's own.

    ``auto`` takes uvloop if it is installed (it is a dependency except on Windows, where it
    does not exist); naming ``uvloop`` when it is missing is an error, not a silent fallback.
    """
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise ValueError("LIVEREC_EVENT_LOOP=uvloop, but uvloop is not installed "
                             "(pip install uvloop; it does not exist on Windows)") from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], name: LoopName) -> T:
    """``asyncio.run(main)`` on the loop called ``name``."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
