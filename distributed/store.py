"""The shared state of the distributed runtime in Redis: its key layout and its reads.

Workers write it through :class:`~distributed.batch_apply.BatchApply` (exactly once, per
batch); workers and web nodes read it here. Row logs are described in
:mod:`distributed.row_log`.

Layout (``{p}`` = key prefix):

* ``{p}cv:all:{epoch}:{aid}``: a row log (below) of ``clicks`` and ``carts_orders``
  together, records (neighbour, clicks weight, carts_orders weight) with the clicks weights
  in the scale of one epoch, folded into one row when read
  (:func:`~online_models.rows.fold_epochs`: a shift is not an increment, so epochs cannot
  share a log); ``{p}cv:buy2buy:{epoch}:{aid}``: a row log of records (neighbour, weight);
  ``{p}cv:epoch``: the latest epoch; ``{p}cv:epochs``: the epochs a row is made of, that one
  and the one before. Older epochs are forgotten: the script drops them from ``cv:epochs``
  and ignores their increments, and a worker deletes their logs (:meth:`RedisStore.forget`);
* ``{p}pop:{epoch}:{kind}``: sorted set, aid → integer count of that epoch (kinds 0–2 the event
  types, 3 all of them); ``{p}pop:epoch``: the latest epoch (older ones are deleted);
  ``{p}pop:known:{epoch}``: sorted set, aid → its events in that known epoch (the fill of last
  resort, :data:`~online_models.popularity.KNOWN`); ``{p}pop:known_epoch``: the latest one
  (older ones are deleted);
* ``{p}session:{id}``: a session's window (JSON), with a time to live;
  ``{p}runs:{id}``: its open runs, an append-only log of binary entries (see
  :meth:`~online_models.sessions.SessionState.take_runs_log`), expiring with it;
* ``{p}offset:{topic}:{partition}``: the next offset to apply;
* ``{p}live``: sorted set of recently active sessions by last event time; ``{p}events``: count;
* ``{p}model:{name}``: the latest snapshot of a learned model (``rerank``: the re-rankers'
  serving weights, JSON) and ``{p}model:{name}:version``, incremented with every save;
* ``{p}watched``: sorted set of sessions some web node's client watches, scored by when the
  watch lapses unless renewed (wall-clock ms); ``{p}lists:{id}``: a watched session's latest
  lists (JSON, expiring with the watch), also published on the channel ``{p}lists``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import redis
import redis.asyncio

from distributed.batch_apply import BatchApply, EncodedBatch
from distributed.row_log import log_sums
from distributed.store_api import (
    LIVE_SESSIONS,
    WATCH_TTL_MS,
    OffsetConflict,
    SessionWrite,
)
from online_models.covisitation import EPOCH_HALF_LIVES as COVIS_EPOCH_HALF_LIVES
from online_models.popularity import EPOCH_HALF_LIVES, KNOWN, TopSide, merged_top
from online_models.rows import fold_epochs

__all__ = ["LIVE_SESSIONS", "WATCH_TTL_MS", "EncodedBatch", "OffsetConflict", "RedisStore",
           "SessionWrite"]


class RedisStore(BatchApply):
    """Apply journals exactly once (:class:`BatchApply`); read rows, popularity and sessions;
    keep models, watches and lists; dump the matrices."""

    def __init__(self, client: redis.Redis, prefix: str = "", session_ttl_ms: int = 0,
                 epoch_shift: int = COVIS_EPOCH_HALF_LIVES, popularity_max_age_s: float = 0.0,
                 async_client: redis.asyncio.Redis | None = None,
                 compact_min_bytes: int = 16_384) -> None:
        super().__init__(client, prefix, session_ttl_ms, async_client, compact_min_bytes)
        self.popularity_max_age_s = popularity_max_age_s
        """Reuse a popularity list read this recently (0: always read). Workers pushing live
        lists use a second: the fill of short sessions may lag popularity by that much, and a
        fresh read costs several round trips per list type."""
        self._popular: dict[int, tuple[float, int, list[int]]] = {}
        self.epoch_shift = epoch_shift
        """Bits a clicks weight loses per epoch (``CovisConfig.epoch_half_lives``)."""
        self._epochs: list[int] = []  # clicks epochs as last read

    @classmethod
    def from_url(cls, url: str, prefix: str = "", session_ttl_ms: int = 0,
                 epoch_shift: int = COVIS_EPOCH_HALF_LIVES) -> RedisStore:
        return cls(redis.Redis.from_url(url), prefix, session_ttl_ms, epoch_shift)

    # -- read ------------------------------------------------------------------------------------
    def stored_offset(self, topic: str, partition: int) -> int | None:
        value = self.client.get(self._offset_key(topic, partition))
        return None if value is None else int(value)

    def session_states(self, ids: Iterable[int]) -> dict[int, tuple[bytes, bytes | None]]:
        """Stored states of these sessions with their runs logs, in one round trip (absent
        sessions are left out): what a worker needs to go on applying their events."""
        ids = list(ids)
        if not ids:
            return {}
        keys = [k for s in ids for k in (self._session_key(s), self._runs_key(s))]
        values = cast(list[Any], self.client.mget(keys))
        return {s: (values[2 * i], values[2 * i + 1]) for i, s in enumerate(ids)
                if values[2 * i] is not None}

    def sessions(self, ids: Iterable[int]) -> dict[int, bytes]:
        """Stored states of these sessions (absent ones are left out)."""
        ids = list(ids)
        if not ids:
            return {}
        blobs = self.client.mget([self._session_key(s) for s in ids])
        return {s: b.encode() if isinstance(b, str) else b
                for s, b in zip(ids, blobs, strict=True) if b is not None}

    def rows_with_offset(self, wanted: Iterable[tuple[str, int]],
                         partition: tuple[str, int] | None = None
                         ) -> tuple[dict[tuple[str, int], dict[int, int]], int | None]:
        """:meth:`rows` in one round trip, and with ``partition`` (topic, partition) its
        stored offset read in the same transaction: whether the rows include a batch whose
        script may have run meanwhile (a worker's batch in flight) is then known, not
        guessed. ``clicks`` and ``carts_orders`` of one item come from the same logs, read
        once."""
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return {}, None
        logs = list(dict.fromkeys((self._family(matrix), aid) for matrix, aid in wanted))
        while True:
            epochs = self._epochs
            pipe = self.client.pipeline(transaction=partition is not None)
            if partition is not None:
                pipe.get(self._offset_key(*partition))
            pipe.smembers(f"{self.prefix}cv:epochs")
            for family, aid in logs:
                for epoch in epochs:
                    pipe.get(self._log_key(family, aid, epoch))
            replies = pipe.execute()
            offset = None
            if partition is not None:
                stored, *replies = replies
                offset = None if stored is None else int(stored)
            self._epochs = sorted(int(e) for e in replies[0])
            if self._epochs == epochs:  # else a new epoch began since last read: again
                break
        read: dict[tuple[str, int], dict[int, int]] = {}
        position = 1
        for family, aid in logs:
            if family == "buy2buy":
                buys: dict[int, int] = {}
                for blob in replies[position:position + len(epochs)]:
                    for b, w in (log_sums(blob, 2)[0] if blob else {}).items():
                        buys[b] = buys.get(b, 0) + w
                position += len(epochs)
                read[("buy2buy", aid)] = buys
                continue
            clicks: dict[int, dict[int, int]] = {}
            co: dict[int, int] = {}
            for i, epoch in enumerate(epochs):
                blob = replies[position + i]
                clicks[epoch] = {}
                if blob:
                    clicks[epoch], in_epoch = log_sums(blob, 3)
                    for b, w in in_epoch.items():
                        co[b] = co.get(b, 0) + w
            position += len(epochs)
            # Every epoch takes part, empty or not: an older epoch's weights are shifted to
            # the latest one's scale, as renormalising does in memory.
            folded = fold_epochs(clicks, self.epoch_shift)
            read[("clicks", aid)] = {b: w for b, w in folded.items() if w}  # rows.decode
            read[("carts_orders", aid)] = co
        return {key: read[key] for key in wanted}, offset

    @property
    def clicks_epoch(self) -> int | None:
        """The latest epoch as last read: the scale clicks rows were folded to, and the
        epochs every row was read over."""
        return self._epochs[-1] if self._epochs else None

    def popularity_epoch(self) -> int:
        value = self.client.get(f"{self.prefix}pop:epoch")
        return -1 if value is None else int(value)

    def popular(self, kind: int, k: int) -> list[int]:
        """The same top list as :meth:`Popularity.top` over the same events, read from Redis."""
        if self.popularity_max_age_s:
            read, size, cached = self._popular.get(kind, (0.0, 0, []))
            if size >= k and time.monotonic() - read < self.popularity_max_age_s:
                return cached[:k]
        if kind == KNOWN:
            value = self.client.get(f"{self.prefix}pop:known_epoch")
            if value is None:
                return []
            known = f"{self.prefix}pop:known:"
            return merged_top(k, self._side_of(f"{known}{int(value)}"),
                              self._side_of(f"{known}{int(value) - 1}"), shift=0)
        epoch = self.popularity_epoch()
        if epoch < 0:
            return []
        top = merged_top(k, self._side(epoch, kind), self._side(epoch - 1, kind))
        if self.popularity_max_age_s:
            self._popular[kind] = (time.monotonic(), k, top)
        return top

    def _side(self, epoch: int, kind: int) -> TopSide:
        return self._side_of(self._pop_key(epoch, kind))

    def _side_of(self, key: str) -> TopSide:
        """One sorted set of counts as :func:`merged_top` reads it."""
        client = cast(Any, self.client)

        def head(m: int) -> tuple[list[tuple[int, int]], int | None]:
            listed = [(int(a), int(s)) for a, s in
                      client.zrevrange(key, 0, m - 1, withscores=True)]
            if len(listed) < m:
                return listed, None
            last = listed[-1][1]
            seen = {a for a, _ in listed}
            ties = sorted(a for a in map(int, client.zrangebyscore(key, last, last))
                          if a not in seen)
            return listed + [(a, last) for a in ties], last - 1

        def values(aids: list[int]) -> list[int]:
            if not aids:
                return []
            return [0 if s is None else int(s) for s in client.zmscore(key, aids)]

        return TopSide(head, values)

    def popularity_scores(self, kinds: Sequence[int],
                          aids: Sequence[int]) -> dict[int, list[int]]:
        """Per kind, the items' scores as :meth:`Popularity.score` gives them over the same
        events (0 for an item never seen), in one round trip after the epoch's."""
        epoch = self.popularity_epoch()
        if epoch < 0 or not aids:
            return {kind: [0] * len(aids) for kind in kinds}
        pipe = cast(Any, self.client.pipeline(transaction=False))
        for kind in kinds:
            pipe.zmscore(self._pop_key(epoch, kind), aids)
            pipe.zmscore(self._pop_key(epoch - 1, kind), aids)
        replies = pipe.execute()
        return {kind: [int(now or 0) + (int(before or 0) >> EPOCH_HALF_LIVES)
                       for now, before in zip(replies[2 * i], replies[2 * i + 1], strict=True)]
                for i, kind in enumerate(kinds)}

    def live_sessions(self, limit: int) -> list[int]:
        """Recently active sessions, most recent first."""
        if limit <= 0:
            return []  # ZREVRANGE 0 -1 would be all of them
        client = cast(Any, self.client)
        return [int(s) for s in client.zrevrange(f"{self.prefix}live", 0, limit - 1)]

    def events(self) -> int:
        """Events applied by all workers together."""
        return int(self.client.get(f"{self.prefix}events") or 0)

    # -- learned models ----------------------------------------------------------------------------
    def _model_key(self, name: str) -> str:
        return f"{self.prefix}model:{name}"

    def save_model(self, name: str, snapshot: bytes) -> int:
        """Store a model's snapshot; return its version (1 for the first save, then +1)."""
        key = self._model_key(name)
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(f"{key}:version")
        pipe.set(key, snapshot)
        version, _ = pipe.execute()
        return int(version)

    def model_version(self, name: str) -> int:
        """The version of a model's latest snapshot (0: none saved yet): one cheap read."""
        return int(self.client.get(f"{self._model_key(name)}:version") or 0)

    def model(self, name: str) -> tuple[int, bytes] | None:
        """A model's latest snapshot and its version, read together (None: never saved)."""
        key = self._model_key(name)
        pipe = self.client.pipeline(transaction=True)
        pipe.get(f"{key}:version")
        pipe.get(key)
        version, snapshot = pipe.execute()
        return None if snapshot is None else (int(version), snapshot)

    # -- watched sessions and their lists --------------------------------------------------------
    @property
    def lists_channel(self) -> str:
        """The pub/sub channel on which workers announce changed lists."""
        return f"{self.prefix}lists"

    def watch(self, sessions: Iterable[int], now_ms: int) -> None:
        """A web node's clients watch these sessions: workers publish their lists."""
        until = now_ms + WATCH_TTL_MS
        mapping = {str(s): until for s in sessions}
        if mapping:
            self.client.zadd(f"{self.prefix}watched", mapping)  # type: ignore[arg-type]

    def watched(self, sessions: Iterable[int], now_ms: int) -> list[int]:
        """Those of ``sessions`` some client watches now."""
        sessions = list(sessions)
        if not sessions:
            return []
        key = f"{self.prefix}watched"
        until = cast(Any, self.client).zmscore(key, sessions)
        return [s for s, u in zip(sessions, until, strict=True) if u is not None and u >= now_ms]

    def forget_lapsed_watches(self, now_ms: int) -> int:
        return int(self.client.zremrangebyscore(f"{self.prefix}watched", "-inf", now_ms - 1))

    def publish_lists(self, payloads: Mapping[int, bytes]) -> None:
        """Store watched sessions' lists and announce them, in one round trip."""
        if not payloads:
            return
        pipe = self.client.pipeline(transaction=False)
        for session, payload in payloads.items():
            pipe.set(f"{self.prefix}lists:{session}", payload, px=WATCH_TTL_MS)
            pipe.publish(self.lists_channel, payload)
        pipe.execute()

    def stored_lists(self, session: int) -> tuple[bytes | None, bytes | None]:
        """A session's stored lists and state, read together (either may be absent)."""
        lists, state = self.client.mget([f"{self.prefix}lists:{session}",
                                         self._session_key(session)])
        return cast(Any, lists), cast(Any, state)

    def latest_event_ts(self) -> int | None:
        """The latest event time among live sessions: the stream's "now"."""
        top = cast(Any, self.client).zrevrange(f"{self.prefix}live", 0, 0, withscores=True)
        return int(top[0][1]) if top else None

    def report(self, kind: str, name: str, body: bytes, until_ms: int) -> None:
        # One hash per kind: a web node reads all of a kind in one call, never a scan.
        self.client.hset(f"{self.prefix}reports:{kind}", name, b"%d:%b" % (until_ms, body))

    def reports(self, kind: str, now_ms: int) -> dict[str, bytes]:
        key = f"{self.prefix}reports:{kind}"
        current, lapsed = {}, []
        for name, value in cast(dict[bytes, bytes], self.client.hgetall(key)).items():
            until, _, body = value.partition(b":")
            if until.isdigit() and int(until) > now_ms:
                current[name.decode()] = body
            else:
                lapsed.append(name)
        if lapsed:
            self.client.hdel(key, *lapsed)
        return current

    def shared_secret(self, candidate: str) -> str:
        """The secret web nodes sign tokens with: ``candidate`` if none is stored yet (the
        first node to start makes it), else the stored one. Never expires."""
        key = f"{self.prefix}secret"
        self.client.set(key, candidate, nx=True)
        return cast(bytes, self.client.get(key)).decode()

    def clear(self) -> int:
        """Delete every key under the prefix (a test's or a benchmark's run, or a deployment
        being reset); return how many. Nothing else may be writing under it meanwhile."""
        keys = list(self.client.scan_iter(match=f"{self.prefix}*", count=10_000))
        for i in range(0, len(keys), 10_000):
            self.client.delete(*keys[i:i + 10_000])
        return len(keys)

    # -- dump ------------------------------------------------------------------------------------
    def matrix(self, name: str) -> dict[int, dict[int, int]]:
        """A whole matrix (for dumps and tests)."""
        pattern = f"{self.prefix}cv:{self._family(name)}:*"
        aids = sorted({int(key.rsplit(b":", 1)[1])
                       for key in self.client.scan_iter(match=pattern, count=1000)})
        out: dict[int, dict[int, int]] = {}
        for i in range(0, len(aids), 1000):
            rows = self.rows((name, aid) for aid in aids[i:i + 1000])
            out.update((aid, row) for (_, aid), row in rows.items() if row)
        return out
