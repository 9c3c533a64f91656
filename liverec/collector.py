"""Keeping Python's garbage collector out of the latency tail.

A full collection walks every tracked object, and a recommender's state is millions of them:
each one stalls the event loop for tens of milliseconds, which was the whole p99 of event →
push latency. So the serving process, once a second, collects the young generations (cheap)
and *freezes* what survived: frozen objects are never walked again. Reference counting still
frees them as usual; only cyclic garbage among them would be missed, so every
``full_every`` seconds everything is unfrozen and collected once (one longer pause, rarely).
"""

from __future__ import annotations

import asyncio
import gc
import time


async def keep_collections_short(interval: float = 1.0, full_every: float = 600.0) -> None:
    """Run until cancelled, in the serving process's event loop."""
    gc.collect()
    gc.freeze()
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        if time.monotonic() - last_full > full_every:
            gc.unfreeze()
            gc.collect()
            last_full = time.monotonic()
        else:
            gc.collect(1)
        gc.freeze()
