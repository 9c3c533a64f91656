"""The embedded runtime: bus, pipeline, hub and web app in one process.

``liverec demo`` and the tests use it. Everything is chosen by :class:`Settings`; with the
defaults (``memory://`` bus and store) no server is needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI

from distributed.serving import distributed_rerank
from liverec.settings import Settings
from online_models.covisitation import DAY_MS, CovisConfig
from online_models.recommend import shelf
from online_models.rerank import OBJECTIVES, RerankConfig
from producers.replay import ReplayProgress
from stream.bus import Bus, MemoryBus
from stream.events import Event
from stream.metrics import RateMeter
from stream.pipeline import PipelineConfig, Recommendations, SessionPipeline
from stream.runner import PipelineRunner
from stream.switch import MethodSwitch
from web.app import create_app
from web.auth import Guard, local_secret
from web.catalog import Catalog
from web.hub import RecommendationHub
from web.limits import Buckets, Connections
from web.security import Security


def open_bus(url: str, *, topic_prefix: str = "", group_id: str = "liverec") -> Bus:
    """A bus for a URL: ``memory://`` (embedded) or ``kafka://host:port`` (production).

    ``topic_prefix`` and ``group_id`` let tests and parallel deployments share one broker.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBus()
    if scheme == "kafka":
        from distributed.kafka_bus import KafkaBus  # only a Kafka deployment needs the client

        return KafkaBus(url, topic=f"{topic_prefix}events", group_id=group_id)
    raise ValueError(f"bus {url!r}: unknown scheme {scheme!r}; expected memory:// or kafka://")


def pipeline_config(settings: Settings, *, rerank: bool | None = None,
                    distributed: bool = False) -> PipelineConfig:
    """The pipeline the settings describe; ``rerank`` overrides ``settings.rerank``.

    ``distributed``: the re-rankers as workers and web nodes run them
    (:func:`distributed.serving.distributed_rerank`: no successors or similar sessions,
    snapshots on a clock).
    """
    use_rerank = settings.rerank if rerank is None else rerank
    kept = settings.rerank_similar_sessions
    config = RerankConfig(sample_percent=settings.rerank_sample_percent,
                          reservoir_sessions=settings.rerank_reservoir_sessions,
                          sequence_model=settings.sequence_model)
    if kept:
        config = dataclasses.replace(config, similar_sessions=50, similar_max_sessions=kept)
    return PipelineConfig(
        covis=CovisConfig(max_neighbors=settings.max_neighbors,
                          epoch_half_lives=settings.covis_epoch_half_lives),
        session_ttl_ms=int(settings.session_ttl_days * DAY_MS),
        rerank=((distributed_rerank(config) if distributed else config)
                if use_rerank else None),
    )


def security(settings: Settings, secret: str | None = None) -> Security:
    """Who may call the web app and how much, as the settings say. ``secret``: one shared
    by web nodes through the store; else the settings', else one kept in ``state_dir``."""
    s = settings
    key = secret or s.secret or local_secret(Path(s.state_dir).expanduser())
    return Security(
        guard=Guard(key.encode(), s.ingest_key, s.public_sessions_below),
        origins=frozenset(o.strip().rstrip("/") for o in s.allowed_origins.split(",")
                          if o.strip()),
        posts=Buckets(s.post_rate, s.post_burst),
        client_events=Buckets(s.client_event_rate, s.client_event_burst),
        creates=Buckets(s.session_create_rate, s.session_create_burst),
        reads=Buckets(s.read_rate, 2 * s.read_rate),
        session_events=Buckets(s.session_event_rate, s.session_event_burst),
        connections=Connections(s.max_connections, s.max_connections_per_client,
                                s.max_tabs_per_session),
        message_rate=s.ws_message_rate,
    )


def open_pipeline(settings: Settings) -> SessionPipeline:
    """A pipeline whose state lives where ``settings.store`` says."""
    scheme = urlsplit(settings.store).scheme
    if scheme != "memory":
        raise ValueError(
            f"store {settings.store!r}: only memory:// is available in the embedded runtime"
        )
    return SessionPipeline(pipeline_config(settings))


#: The embedded runtime's most events per batch (``LIVEREC_MAX_BATCH`` overrides it): a batch
#: holds the event loop that serves the page and its WebSockets.
EMBEDDED_MAX_BATCH = 1000


class EmbeddedRuntime:
    """One process: a bus feeding the pipeline, the hub pushing its changes, the web app."""

    def __init__(self, settings: Settings | None = None, catalog: Catalog | None = None) -> None:
        self.settings = settings or Settings()
        self.bus: Bus = open_bus(self.settings.bus)
        self.pipeline = open_pipeline(self.settings)
        self.runner = PipelineRunner(self.bus, self.pipeline,
                                     self.settings.max_batch or EMBEDDED_MAX_BATCH)
        self.switch = MethodSwitch(self.pipeline)
        """Which method serves each session (a shopper may pick another on the page)."""
        self.hub = RecommendationHub(self.switch)
        self.runner.add_listener(self.hub.notify)
        self.app: FastAPI = create_app(self, self.hub, catalog, security(self.settings))
        self.replay = ReplayProgress()
        self._task: asyncio.Task[None] | None = None
        self._rate = RateMeter()
        self._clock: tuple[int, float, float | None] | None = None

    def replay_clock(self, first_ts: int, speed: float | None) -> None:
        """From now on "now" is the replay's event time, so a shopper's events on the page
        fall in the same time frame as the replayed sessions (see :meth:`now_ms`)."""
        self._clock = (first_ts, time.monotonic(), speed)

    def now_ms(self) -> int:
        """The stream's current time: the replay's clock while one runs, else the wall clock.

        Replayed data is often from the past (OTTO: 2022); stamping a live click with today's
        date would put it years after everything else and age the whole state at once.
        """
        if self._clock is None:
            return int(time.time() * 1000)
        first_ts, started, speed = self._clock
        if speed is None:
            return max(first_ts, self.pipeline.sessions.watermark)
        return first_ts + int((time.monotonic() - started) * 1000 * speed)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Start consuming the bus in the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self.runner.run(), name="pipeline")
        return self._task

    async def stop(self) -> None:
        """Close the bus, let the pipeline drain what is queued, and stop."""
        await self.bus.close()
        if self._task is not None:
            await self._task
            self._task = None

    # -- Backend protocol for the web app ---------------------------------------------------------
    async def recommendations(self, session: int) -> Recommendations:
        return self.switch.recommendations(session)

    def methods(self) -> tuple[str, list[str]]:
        return self.switch.default, self.switch.available()

    async def choose_method(self, session: int, method: str) -> Recommendations:
        self.switch.choose(session, method)
        recs = self.switch.recommendations(session)
        self.hub.offer(recs)
        return recs

    async def publish(self, events: Sequence[Event]) -> None:
        await self.bus.publish(events)

    async def watch(self, session: int) -> None:
        """Nothing to do: the hub recomputes watched sessions from the pipeline itself."""

    async def live_sessions(self, limit: int) -> list[int]:
        return self.pipeline.sessions.recent_sessions(limit)

    async def popular_items(self, limit: int) -> list[int]:
        return shelf(self.pipeline.popularity, limit)

    def ready(self) -> dict[str, str | None]:
        running = self._task is not None and not self._task.done()
        return {"pipeline": None if running else "the pipeline is not running"}

    def _models(self) -> dict[str, dict[str, Any]] | None:
        """Per objective: the re-ranker's and its prior's recall@20 on the events it learned
        from (both judged before learning), and which of the two serves."""
        reranker = self.pipeline.reranker
        if reranker is None:
            return None
        out: dict[str, dict[str, Any]] = {}
        for name, ranker in zip(OBJECTIVES, reranker.rankers, strict=True):
            n = ranker.judged
            out[name] = {"judged": n, "model": ranker.model_hits / n if n else None,
                         "prior": ranker.prior_hits / n if n else None,
                         "serving": "model" if ranker.serves_model else "prior"}
        return out

    async def stats(self) -> dict[str, Any]:
        rate = self._rate.rate(self.pipeline.events_applied)
        recall = self.pipeline.prequential.recall()
        return {**self.pipeline.stats(), "events_per_s": rate,
                "recall": recall if any(v is not None for v in recall.values()) else None,
                "models": self._models(),
                "batches": self.runner.stats.batches, "replay": self.replay.to_json()}
