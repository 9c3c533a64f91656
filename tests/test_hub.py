"""The hub's latest-value fan-out, without sockets."""

from __future__ import annotations

import asyncio
import time

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


def test_a_woken_subscription_is_read_with_take() -> None:
    """A client without a waiting task: each offer wakes it, take() gives the newest once."""
    pipeline = SessionPipeline()
    hub = RecommendationHub(pipeline)
    woken: list[int] = []
    sub = hub.subscribe(1, lambda: woken.append(1))
    assert woken == [1]  # the current lists, at once
    first = sub.take()
    assert first is not None and sub.take() is None
    pipeline.apply([Event(1, 5, T0, CLICKS)])
    pipeline.apply([Event(1, 6, T0 + 1, CLICKS)])
    hub.notify([1])
    taken = sub.take()
    assert len(woken) == 2 and taken is not None and taken[0].version == 2
    assert sub.take() is None


async def test_notify_pushes_the_first_sessions_before_computing_them_all() -> None:
    """A batch touching many watched sessions: the first lists leave within a slice, the rest
    follow between other tasks, each session computed once from the newest state."""
    class Slow(SessionPipeline):
        def recommendations(self, session: int):  # type: ignore[no-untyped-def]
            time.sleep(0.001)
            return super().recommendations(session)

    pipeline = Slow()
    hub = RecommendationHub(pipeline)
    subs = [hub.subscribe(s) for s in range(200)]
    for sub in subs:
        sub.ready.clear()  # type: ignore[union-attr]
    touched = pipeline.apply([Event(s, 7, T0 + s, CLICKS) for s in range(200)])
    offered_now = hub.notify(touched)
    assert 0 < offered_now < 200
    assert sum(sub.ready.is_set() for sub in subs) == offered_now  # type: ignore[union-attr]
    hub.notify(touched)  # queued again before their turn: still computed once
    for _ in range(1000):
        if all(sub.ready.is_set() for sub in subs):  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.005)
    assert all(sub.latest is not None and sub.latest.version == 1 for sub in subs)
