"""A web node's backend: the page's app served over the shared store instead of an in-process
pipeline (``liverec web``, see ``docs/production.md``).

* lists are read from Redis: those the workers stored for a watched session when they are
  current (same version as the stored session), else computed from the shared state with the
  recipe the workers use (:mod:`distributed.serving`);
* a client's watch is registered in Redis (and renewed while it lasts), so workers announce
  that session's changed lists on the ``{prefix}lists`` channel; the node's one subscription to
  that channel feeds its hub, which pushes to its own WebSocket clients;
* posted events go to Kafka, like any producer's.

Nothing here outlives the process: any number of nodes can run behind a load balancer, and a
node that dies loses only its clients' connections (they reconnect to another).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from distributed.figures import current_replay, summed
from distributed.health import brokers_of, kafka_unreachable
from distributed.kafka_bus import KafkaBus
from distributed.serving import SharedModels, lists_from_store, store_shelf
from distributed.store import WATCH_TTL_MS, RedisStore
from online_models.rerank import Reranker
from online_models.sessions import SessionState
from stream.events import Event
from stream.metrics import RateMeter
from stream.pipeline import PipelineConfig, Recommendations
from web.hub import RecommendationHub

log = logging.getLogger("liverec.web")


#: The longest a web node answers ``/stats`` and ``/metrics`` from figures already read.
STATS_MAX_AGE_S = 1.0
#: Announcements older than this (from a worker's clock, or a backlog) count as this old.
LATEST_ORIGIN_S = 3600.0
#: A stream whose latest event is this much older than the wall clock is a replay of past
#: data, and keeps the replay's time.
REPLAY_BEHIND_MS = 3_600_000


def origin_of(arrived_ms: object) -> float:
    """The ``perf_counter()`` moment an announced list's oldest event reached Kafka (the
    worker's wall-clock stamp), so the hub's push latency is this node's from Kafka to its
    clients; 0 (not measured) without one."""
    if not isinstance(arrived_ms, int) or isinstance(arrived_ms, bool) or arrived_ms <= 0:
        return 0.0
    age_s = min(max(0.0, time.time() - arrived_ms / 1000), LATEST_ORIGIN_S)
    return time.perf_counter() - age_s


class StoreBackend:
    """The web app's backend over Redis (state, lists, announcements) and Kafka (events)."""

    def __init__(self, store: str, bus: str, topic_prefix: str, group_id: str,
                 config: PipelineConfig) -> None:
        self.store_url = store
        self.config = config
        self.store = RedisStore.from_url(store, topic_prefix,
                                         epoch_shift=config.covis.epoch_half_lives)
        self.bus = KafkaBus(bus, topic=f"{topic_prefix}events", group_id=group_id)
        self.hub = RecommendationHub()
        self.models = (SharedModels(self.store, Reranker(config.rerank))
                       if config.rerank is not None else None)
        """The re-rankers' newest snapshot from the store, for lists no worker announced."""
        self.listening = False
        self.brokers = brokers_of(bus)
        self.kafka_unreachable: str | None = "Kafka: not checked yet"
        """Why no broker accepted a connection at the last check (:meth:`watch_kafka`);
        None when one did."""
        self.announced = 0
        self._stats: tuple[float, dict[str, Any]] = (-STATS_MAX_AGE_S, {})
        self._now: tuple[float, int | None] = (0.0, None)
        self._rate = RateMeter()

    # -- Backend protocol -------------------------------------------------------------------------
    async def recommendations(self, session: int) -> Recommendations:
        return await asyncio.to_thread(self._recommendations, session)

    def _recommendations(self, session: int) -> Recommendations:
        stored, blob = self.store.stored_lists(session)
        state = SessionState.from_bytes(blob, self.config.covis.window) if blob else None
        if stored is not None:
            recs = Recommendations.from_json(orjson.loads(stored))
            if state is not None and recs.version == state.events:
                return recs  # the workers' latest for this version
        reranker = None
        if self.models is not None:
            self.models.refresh()
            reranker = self.models.reranker
        return lists_from_store(self.store, {session: state}, self.config.list_size,
                                reranker, lifetime_ms=self.config.session_lifetime_ms)[session]

    def methods(self) -> tuple[str, list[str]]:
        default = "rerank" if self.config.rerank is not None else "covis"
        return default, [default]

    async def choose_method(self, session: int, method: str) -> Recommendations:
        default = self.methods()[0]
        if method != default:  # workers compute every watched session's lists one way
            raise ValueError(f"{method!r} is not served here: a distributed deployment serves "
                             f"{default} to every session")
        return await self.recommendations(session)

    async def publish(self, events: Sequence[Event]) -> None:
        await self.bus.publish(events)

    async def watch(self, session: int) -> None:
        await asyncio.to_thread(self.store.watch, [session], int(time.time() * 1000))

    async def live_sessions(self, limit: int) -> list[int]:
        return await asyncio.to_thread(self.store.live_sessions, limit)

    async def popular_items(self, limit: int) -> list[int]:
        return await asyncio.to_thread(store_shelf, self.store, limit)

    async def stats(self) -> dict[str, Any]:
        """The deployment's figures: events from the store, the rest summed over the
        workers' reports (:mod:`distributed.figures`); read at most once a second, however
        many pages poll."""
        now = time.monotonic()
        if now - self._stats[0] >= STATS_MAX_AGE_S:
            figures = await asyncio.to_thread(self._read_figures)
            self._stats = (now, figures)
        return {**self._stats[1], "lists_announced": self.announced, "node": "web"}

    def _read_figures(self) -> dict[str, Any]:
        events = self.store.events()
        now_ms = int(time.time() * 1000)
        workers = summed(self.store.reports("worker", now_ms).values())
        replay = current_replay(self.store.reports("replay", now_ms).values())
        return {"events": events, "events_per_s": self._rate.rate(events), **workers,
                "replay": replay}

    def ready(self) -> dict[str, str | None]:
        """Subscribed to the workers' announcements (Redis), and Kafka takes connections."""
        return {"redis": None if self.listening else "not subscribed to the workers' lists "
                                                      "channel (Redis)",
                "kafka": self.kafka_unreachable}

    @property
    def kafka_reachable(self) -> bool:
        return self.kafka_unreachable is None

    def now_ms(self) -> int:
        """The stream's clock: the wall clock, unless the workers' latest stored event is more
        than :data:`REPLAY_BEHIND_MS` older (a replay of past data), whose time it is then.

        Posted events are stamped no later than this clock (:mod:`web.app`), so they cannot
        move it: during a replay it is the replay's latest event, live it is the wall clock.
        """
        fetched, latest = self._now
        if time.monotonic() - fetched > 1.0:
            latest = self.store.latest_event_ts()
            self._now = (time.monotonic(), latest)
        wall = int(time.time() * 1000)
        return latest if latest is not None and latest < wall - REPLAY_BEHIND_MS else wall

    # -- background work --------------------------------------------------------------------------
    async def listen(self) -> None:
        """Feed the hub from the workers' announcements; reconnect when Redis goes away."""
        client = aioredis.Redis.from_url(self.store_url)
        delay = 0.2
        while True:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.store.lists_channel)
                self.listening, delay = True, 0.2
                async for message in pubsub.listen():
                    try:
                        announced = orjson.loads(message["data"])
                        recs = Recommendations.from_json(announced)
                    except (ValueError, KeyError, TypeError) as exc:  # not ours: skip it
                        log.warning("ignoring a malformed lists announcement: %s", exc)
                        continue
                    self.announced += 1
                    self.hub.offer(recs, origin_of(announced.get("arrived_ms")))
            except (RedisConnectionError, OSError) as exc:
                self.listening = False
                log.warning("lists channel lost (%s); resubscribing in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                # Missed announcements: re-seed every watched session with its current lists.
                for session in self.hub.watched():
                    with contextlib.suppress(Exception):
                        self.hub.offer(await self.recommendations(session))
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def watch_kafka(self, every_s: float = 5.0) -> None:
        """Check every few seconds that a broker takes connections: events posted here go to
        Kafka, so a node that cannot reach it is not ready."""
        while True:
            why = await asyncio.to_thread(kafka_unreachable, self.brokers)
            if (why is None) != self.kafka_reachable:
                if why is None:
                    log.info("Kafka reachable")
                else:
                    log.warning("%s", why)
            self.kafka_unreachable = why
            await asyncio.sleep(every_s)

    async def renew_watches(self) -> None:
        """Keep this node's watches alive in Redis while its clients are connected."""
        while True:
            await asyncio.sleep(WATCH_TTL_MS / 3000)
            watched = self.hub.watched()
            if watched:
                try:
                    await asyncio.to_thread(self.store.watch, watched, int(time.time() * 1000))
                except Exception as exc:  # Redis away: the next round tries again
                    log.warning("could not renew watches: %s", exc)

    async def close(self) -> None:
        await self.bus.close()
