"""The hub's latest-value fan-out, without sockets."""

from __future__ import annotations

import asyncio

from stream.events import CLICKS, Event
from stream.pipeline import SessionPipeline
from web.hub import RecommendationHub

T0 = 1_659_304_800_000


async def test_a_client_that_reads_late_gets_only_the_newest_lists() -> None:
    pipeline = SessionPipeline()
    hub = RecommendationHub(pipeline)
    sub = hub.subscribe(1)
    first, _ = await sub.next()
    for i in range(40):
        hub.notify(pipeline.apply([Event(1, 100 + i, T0 + i, CLICKS)]))
    latest, _ = await sub.next()
    assert latest.version == 40 and latest.clicks[0] == 139
    assert not sub.ready.is_set()  # nothing else queued: no backlog
    waiter = asyncio.create_task(sub.next())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    waiter.cancel()


def test_every_new_version_is_pushed_even_with_the_same_lists() -> None:
    """A shopper's event that leaves the lists as they were is still acknowledged: the push
    carries the new version. The same version with the same lists is not sent twice."""
    pipeline = SessionPipeline()
    hub = RecommendationHub(pipeline)
    pipeline.apply([Event(1, 5, T0, CLICKS)])
    sub = hub.subscribe(1)
    sub.ready.clear()
    before = pipeline.recommendations(1)
    # Re-clicking the session's only item changes the version but not the lists.
    assert hub.notify(pipeline.apply([Event(1, 5, T0 + 1, CLICKS)])) == 1
    assert sub.ready.is_set() and sub.latest is not None
    assert sub.latest.version == before.version + 1 and sub.latest.same_lists(before)
    sub.ready.clear()
    assert hub.notify([1]) == 0  # nothing new: no push
    assert not sub.ready.is_set()


def test_only_watched_sessions_have_their_lists_computed() -> None:
    class CountingPipeline(SessionPipeline):
        calls = 0

        def recommendations(self, session: int):  # type: ignore[no-untyped-def]
            CountingPipeline.calls += 1
            return super().recommendations(session)

    pipeline = CountingPipeline()
    hub = RecommendationHub(pipeline)
    hub.subscribe(1)
    CountingPipeline.calls = 0
    hub.notify(pipeline.apply([Event(s, s, T0, CLICKS) for s in range(100)]))
    assert CountingPipeline.calls == 1
