"""Settings: one class, each field with a default, a docstring and an ``LIVEREC_*`` env name."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Read from the environment (``LIVEREC_BUS=…``); command-line flags override them."""

    model_config = SettingsConfigDict(env_prefix="LIVEREC_", extra="ignore")

    bus: str = "memory://"
    """Where events flow: ``memory://`` (in-process) or ``kafka://host:port``."""
    store: str = "memory://"
    """Where state lives: ``memory://`` (in-process) or ``redis://host:port/db``."""
    topic_prefix: str = ""
    """Prefix of every Kafka topic (``{prefix}events``), so deployments can share a broker."""
    app_id: str = "liverec"
    """Kafka consumer group of the workers."""
    partitions: int = Field(4, ge=1)
    """Partitions of the events topic when liverec creates it; more partitions, more workers."""
    host: str = "127.0.0.1"
    """Web server address. ``0.0.0.0`` to be reachable from other machines."""
    port: int = Field(8000, ge=0, le=65535)
    """Web server port (0 = any free port)."""
    metrics_port: int | None = Field(None, ge=0, le=65535)
    """``liverec worker``: Prometheus ``/metrics`` on this port. Unset: 9108, or the next
    free port (each worker on a host takes its own); 0: any free port; the port bound is
    printed and logged."""
    max_batch: int | None = Field(None, ge=1)
    """Most events the pipeline applies in one batch; a batch is only that big when events
    piled up. Default: 1,000 embedded (a batch holds the event loop that also serves the
    page, ~30 ms at 1,000), 8,000 in a worker (its Redis script, ~85 ms at 8,000, is shared
    by more events of each session and row: 1.1–1.3 times the events/s of 1,000)."""
    batch_window_ms: float = Field(10.0, gt=0)
    """``liverec worker``: while records come in fast enough that this wait would gather two
    (200 events/s at 10 ms), wait this long between fetches, so that batches grow with the
    load; on a quieter stream fetch at once (waiting cost ~15 ms of push latency at 100
    events/s)."""
    fetch_max_wait_ms: int = Field(100, ge=1)
    """``liverec worker``: longest Kafka may hold a fetch for more data (Kafka's
    ``fetch.max.wait.ms``). Faust sets 1,500, and under load fetches were held that long
    with records waiting: at 1,000 events/s, pushes lagged by 1–2 s."""
    batch_linger_records: int = Field(2, ge=0)
    """``liverec worker``: wait ``batch_window_ms`` between fetches while it would gather at
    least this many records at the rate of the last fetch's (0: always wait)."""
    view_max_age_s: float = Field(30.0, gt=0)
    """``liverec worker``: how stale its view of what other workers stored may be: the
    co-visitation rows its pushed lists read, their popular fill and its re-rankers'
    learning features are re-read from Redis after this long (its own batches keep the rows
    current). Rows re-read every 5 s pushed a worker past what it could take at 1,000
    events/s (docs/benchmarks.md)."""
    commit_interval_s: float = Field(1.0, gt=0)
    """``liverec worker``: how often it commits to Kafka the offsets Redis has (Redis's
    offsets decide what is applied; a later commit only means more skipping on restart)."""
    watch_sweep_s: float = Field(10.0, gt=0)
    """``liverec worker``: how often it forgets watches no web node renewed."""
    kafka_session_timeout_s: float = Field(8.0, gt=0)
    """``liverec worker``: a worker silent this long leaves the group and its partitions go
    to the others (Kafka's default is a minute)."""
    redis_timeout_s: float = Field(10.0, gt=0)
    """``liverec worker``: longest a Redis connect or call may take before Redis counts as
    away (and is retried)."""
    redis_patience_s: float = Field(300.0, gt=0)
    """``liverec worker``: how long it waits for Redis to come back before it exits, so that
    Kafka gives its partitions to another worker (nothing is committed before Redis has a
    batch, so waiting and exiting both lose nothing)."""
    compact_min_bytes: int = Field(16_384, ge=0)
    """``liverec worker``: row logs shorter than this are never compacted (summing a short
    log on read costs less than a compaction's two round trips)."""
    rerank: bool = True
    """Serve the River re-rankers' lists and learn them from events (``false``: the
    co-visitation recipe). Distributed: workers learn, mix and save snapshots to Redis, and
    every worker and web node serves the newest."""
    rerank_sample_percent: int = Field(10, ge=0, le=100)
    """Share of sessions whose events are judged (prequential recall) and learned from: each
    costs a list computation, so 100 % would cap one core near 1,000 events/s."""
    rerank_reservoir_sessions: int = Field(100_000, ge=1)
    """Sessions whose earlier candidates the re-rankers keep to learn carts and orders from
    (least recent dropped): about 12 KiB each, so the default bounds it near 1.2 GiB."""
    rerank_similar_sessions: int = Field(0, ge=0)
    """Recent sessions the embedded re-rankers keep to find sessions like a shopper's
    (least recently active dropped; at most 30 items each), whose items become candidates;
    0 (the default): none (docs/quality.md, "Sessions like this one")."""
    sequence_model: str | None = None
    """A trained sequence model (``liverec train … --out MODEL.npz``) whose next-item picks the
    re-rankers read as candidates and a feature, on both runtimes; every process checks the
    file every 5 s and swaps in a new one whole (write it beside and rename it over).
    None (the default): no sequence model (docs/sequence.md, "In the stream")."""
    model_sync_seconds: float = Field(5.0, gt=0)
    """``liverec worker``: save the re-rankers' snapshot to Redis (mixed with the other
    workers') this often; web nodes and workers serve a new one within a second."""
    max_neighbors: int = Field(0, ge=0)
    """Co-visitation row bound of the embedded runtime (0 = unbounded, exact). A bound saves
    about a fifth of the cells but makes its rows an approximation: its lists then differ
    from the distributed runtime's, whose rows in Redis are exact (docs/covisitation.md)."""
    covis_epoch_half_lives: int = Field(8, ge=1, le=40)
    """Co-visitation epochs, in 14-day half-lives (8: 112 days). The matrices keep the runs
    of the current epoch and the one before, so items and pairs nobody views are forgotten
    1 to 2 epochs later: this bounds what junk can add to the state (docs/security.md).
    Every worker, web node and ``liverec covis`` must use the same value."""
    session_ttl_days: float = Field(14.0, gt=0)
    """Sessions idle longer than this (event time) are forgotten."""
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """Event loop of ``demo`` and ``web``: ``auto`` takes uvloop where it is installed (less
    CPU per request and push), ``asyncio`` the standard one."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level of liverec's own log records (a worker's start, partitions assigned and
    revoked, its progress line, warnings and errors); libraries (Faust, aiokafka) log
    warnings and errors only, unless this is ``debug`` (``--verbose``)."""
    log_format: Literal["text", "json"] = "text"
    """``text``: one line per record for people; ``json``: one JSON object per line (``ts``,
    ``level``, ``logger``, ``message``, ``exception``) for a log collector."""
    worker_stall_s: float = Field(60.0, gt=0)
    """``liverec worker``: ``/healthz`` fails once the worker has neither polled Kafka nor
    stored a batch for this long (its loop is stuck; a restart helps)."""
    ready_max_lag: int = Field(10_000, ge=0)
    """``liverec worker``: ``/readyz`` fails while the worker is more events behind than this
    over its partitions (catching up after a restart)."""
    progress_interval_s: float = Field(60.0, gt=0)
    """``liverec worker``: log a one-line progress report (events/s, lag) this often."""
    report_interval_s: float = Field(2.0, gt=0)
    """``liverec worker``: report its figures (sessions, prequential counts, lag) through
    the store this often, for every web node's page and ``/metrics``; a worker silent for
    three intervals drops out of the sums."""

    # -- who may call the web app, and how much (web/auth.py, web/limits.py) --------------------
    secret: str | None = None
    """Signs shoppers' session tokens. Unset: the embedded runtime keeps one in
    ``state_dir``; web nodes share one through the store (the first to start makes it)."""
    state_dir: str = "~/.local/state/liverec"
    """Where the embedded runtime keeps its secret."""
    ingest_key: str | None = None
    """The service key a shop's backend sends (``Authorization: Bearer``) to post events for
    any session. Unset: only shoppers' own tokens post, each for its own session."""
    allowed_origins: str = ""
    """Comma-separated origins (``https://shop.example``) whose pages may open WebSockets.
    Empty: the page's own origin only. Clients that send no ``Origin`` (not browsers) pass."""
    public_sessions_below: int = Field(10**12, ge=0)
    """Sessions numbered below this are public demo sessions (replayed logs): anyone may
    watch them, nobody posts into them but the service key. 0: none are public."""
    post_rate: float = Field(20.0, gt=0)
    """``POST /events`` requests per second per client address (burst ``post_burst``)."""
    post_burst: int = Field(60, ge=1)
    """``POST /events`` requests one client address may send at once before ``post_rate``
    holds it back."""
    client_event_rate: float = Field(50.0, gt=0)
    """Events per second all shoppers' sessions behind one client address may post (burst
    ``client_event_burst``): bounds what one address can add to the state however many
    sessions it opens. The service key is exempt."""
    client_event_burst: int = Field(500, ge=1)
    """Events one client address may post at once before ``client_event_rate`` holds it
    back."""
    read_rate: float = Field(100.0, gt=0)
    """``GET /sessions/{id}/recommendations`` per second per client address (burst 200):
    each may compute a session's lists. The page reads them over its WebSocket instead."""
    session_create_rate: float = Field(2.0, gt=0)
    """``POST /sessions`` per second per client address (burst ``session_create_burst``):
    many shoppers may share an address behind a NAT."""
    session_create_burst: int = Field(60, ge=1)
    """``POST /sessions`` one client address may send at once before
    ``session_create_rate`` holds it back."""
    session_event_rate: float = Field(5.0, gt=0)
    """Events per second one shopper's session may post (burst ``session_event_burst``,
    also the most one request of a shopper may carry)."""
    session_event_burst: int = Field(50, ge=1)
    """Events one shopper's session may post at once, and the most one of its requests may
    carry."""
    max_connections: int = Field(20_000, ge=1)
    """WebSockets one web process holds; past it, new ones are refused (close 4503)."""
    max_connections_per_client: int = Field(2_500, ge=1)
    """WebSockets from one client address (a NAT or a proxy may carry thousands)."""
    max_tabs_per_session: int = Field(4, ge=1)
    """WebSockets watching one private session (public ones are watched by every page)."""
    ws_max_message_bytes: int = Field(4096, ge=125)
    """Largest client frame a WebSocket reads (clients only send pings)."""
    ws_message_rate: float = Field(5.0, gt=0)
    """Client messages per second one WebSocket may send (burst 30) before it is closed."""
