"""The shared state of the distributed runtime in Redis, summed from batch journals exactly once.

Each worker applies its own partitions' events and sends the batch's increments here:
co-visitation cells (:class:`~online_models.covisitation.CellJournal`) and popularity counts
(:meth:`~online_models.popularity.Popularity.take_journal`). Both are integer sums, so
``HINCRBY``/``ZINCRBY`` from any number of workers, in any order, end at the state one process
would compute. Exactly once: a batch carries the offset range it covers per (topic, partition);
a Lua script applies it only if the stored offset of each partition is where the batch starts,
then moves those offsets to the batch's end, all atomically. A batch replayed after a crash is
refused, so nothing counts twice; one lost in a crash was never stored, so Kafka redelivers it.

Layout (``{p}`` = key prefix):

* ``{p}cv:{matrix}:{aid}``: hash, neighbour → weight (``clicks``, ``carts_orders``, ``buy2buy``);
* ``{p}pop:{epoch}:{kind}``: sorted set, aid → integer count of that epoch (kinds 0–2 the event
  types, 3 all of them); ``{p}pop:epoch``: the latest epoch (older ones are deleted);
* ``{p}session:{id}``: a session's window and open runs (JSON), with a time to live;
* ``{p}offset:{topic}:{partition}``: the next offset to apply;
* ``{p}live``: sorted set of recently active sessions by last event time; ``{p}events``: count;
* ``{p}watched``: sorted set of sessions some web node's client watches, scored by when the
  watch lapses unless renewed (wall-clock ms); ``{p}lists:{id}``: a watched session's latest
  lists (JSON, expiring with the watch), also published on the channel ``{p}lists``.

The script builds the names of old popularity keys to delete from the prefix, which a Redis
Cluster would refuse; liverec's store is one Redis (with a replica for failover).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, cast

import redis

from online_models.covisitation import MATRICES, CellJournal, export_rows
from online_models.popularity import TopSide, merged_top

#: Recently active sessions kept in ``{p}live``.
LIVE_SESSIONS = 1000
#: A watch lapses this long after its web node last renewed it (a node renews every third).
WATCH_TTL_MS = 30_000

# KEYS: offset keys (n), hash keys (h), sorted-set keys (z), session keys (s), then the
# popularity epoch key, the live set and the event counter.
# ARGV (10 first): n, h, z, s, the batch's latest popularity epoch (-1: none), the prefix,
# live pairs (L), events, session ttl (ms, 0 = none), live sessions to keep. Then (start, end)
# per offset key; per hash key a field count and field, increment pairs; per sorted-set key its
# epoch, a member count and member, increment pairs; one value per session key; L (score,
# member) pairs.
_APPLY = """
local n, h, z, s = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local arg = 11
for i = 1, n do
  local stored = tonumber(redis.call('GET', KEYS[i]) or ARGV[arg])
  if stored ~= tonumber(ARGV[arg]) then
    return {0, i, stored}
  end
  arg = arg + 2
end
local key = n
for _ = 1, h do
  key = key + 1
  local fields = tonumber(ARGV[arg])
  arg = arg + 1
  for _ = 1, fields do
    redis.call('HINCRBY', KEYS[key], ARGV[arg], ARGV[arg + 1])
    arg = arg + 2
  end
end
local marker = KEYS[#KEYS - 2]
local current = tonumber(redis.call('GET', marker) or '-1')
local latest = tonumber(ARGV[5])
if latest > current then
  if current >= 0 then
    for e = current - 1, latest - 2 do
      for kind = 0, 3 do
        redis.call('UNLINK', ARGV[6] .. 'pop:' .. e .. ':' .. kind)
      end
    end
  end
  redis.call('SET', marker, latest)
  current = latest
end
for _ = 1, z do
  key = key + 1
  local epoch, members = tonumber(ARGV[arg]), tonumber(ARGV[arg + 1])
  arg = arg + 2
  if epoch >= current - 1 then
    for _ = 1, members do
      redis.call('ZINCRBY', KEYS[key], ARGV[arg + 1], ARGV[arg])
      arg = arg + 2
    end
  else
    arg = arg + 2 * members
  end
end
local ttl = tonumber(ARGV[9])
for _ = 1, s do
  key = key + 1
  if ttl > 0 then
    redis.call('SET', KEYS[key], ARGV[arg], 'PX', ttl)
  else
    redis.call('SET', KEYS[key], ARGV[arg])
  end
  arg = arg + 1
end
local live = tonumber(ARGV[7])
for _ = 1, live do
  redis.call('ZADD', KEYS[#KEYS - 1], ARGV[arg], ARGV[arg + 1])
  arg = arg + 2
end
if live > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[#KEYS - 1], 0, -tonumber(ARGV[10]) - 1)
end
redis.call('INCRBY', KEYS[#KEYS], ARGV[8])
arg = 11
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[arg + 1])
  arg = arg + 2
end
return {1, 0, 0}
"""


class OffsetConflict(RuntimeError):
    """A batch does not start where its partition's stored offset says the next one must."""


class RedisStore:
    """Apply journals exactly once; read rows, popularity and sessions; dump the matrices."""

    def __init__(self, client: redis.Redis, prefix: str = "", session_ttl_ms: int = 0) -> None:
        self.client = client
        self.prefix = prefix
        self.session_ttl_ms = session_ttl_ms
        """Session keys expire after this long without a change (0 = never): the event-time
        expiry of the in-memory store, in wall-clock time."""
        self._apply = client.register_script(_APPLY)

    @classmethod
    def from_url(cls, url: str, prefix: str = "", session_ttl_ms: int = 0) -> RedisStore:
        return cls(redis.Redis.from_url(url), prefix, session_ttl_ms)

    # -- keys ------------------------------------------------------------------------------------
    def _row_key(self, matrix: str, aid: int) -> str:
        return f"{self.prefix}cv:{matrix}:{aid}"

    def _pop_key(self, epoch: int, kind: int) -> str:
        return f"{self.prefix}pop:{epoch}:{kind}"

    def _session_key(self, session: int) -> str:
        return f"{self.prefix}session:{session}"

    def _offset_key(self, topic: str, partition: int) -> str:
        return f"{self.prefix}offset:{topic}:{partition}"

    # -- write -----------------------------------------------------------------------------------
    def apply(self, journal: CellJournal,
              offsets: Mapping[tuple[str, int], tuple[int, int]],
              sessions: Mapping[int, bytes] | None = None,
              popularity: Mapping[tuple[int, int], Mapping[int, int]] | None = None,
              live: Mapping[int, int] | None = None, events: int = 0) -> bool:
        """Add a batch's increments, store its sessions' states, if no part of it was applied
        before.

        ``offsets`` maps (topic, partition) to the batch's (first, next) offsets; ``popularity``
        (epoch, kind) to {aid: count}; ``live`` session to its last event time. Returns False,
        changing nothing, when the batch was already applied; raises :class:`OffsetConflict`
        when it starts past a gap (events would be lost).
        """
        sessions, popularity, live = sessions or {}, popularity or {}, live or {}
        offset_keys: list[str] = []
        offset_args: list[int] = []
        for (topic, partition), (start, end) in offsets.items():
            offset_keys.append(self._offset_key(topic, partition))
            offset_args += [start, end]
        keys: list[str] = list(offset_keys)
        body: list[int | str | bytes] = list(offset_args)
        hashes = 0
        for name in MATRICES:
            for aid, row in journal.matrix(name).items():
                keys.append(self._row_key(name, aid))
                body.append(len(row))
                for neighbour, inc in row.items():
                    body += [neighbour, inc]
                hashes += 1
        for (epoch, kind), counts in popularity.items():
            keys.append(self._pop_key(epoch, kind))
            body += [epoch, len(counts)]
            for aid, inc in counts.items():
                body += [aid, inc]
        for session, blob in sessions.items():
            keys.append(self._session_key(session))
            body.append(blob)
        for session, ts in live.items():
            body += [ts, session]
        keys += [f"{self.prefix}pop:epoch", f"{self.prefix}live", f"{self.prefix}events"]
        latest = max((epoch for epoch, _ in popularity), default=-1)
        head: list[int | str | bytes] = [len(offsets), hashes, len(popularity), len(sessions),
                                         latest, self.prefix, len(live), events,
                                         self.session_ttl_ms, LIVE_SESSIONS]
        applied, index, stored = self._apply(keys=keys, args=head + body)
        if applied:
            return True
        (topic, partition), (start, end) = list(offsets.items())[index - 1]
        if int(stored) >= end:
            return False  # applied before: a redelivery after a crash or a rebalance
        raise OffsetConflict(f"{topic}[{partition}]: batch covers {start}..{end - 1} but the "
                             f"next offset to apply is {stored}")

    # -- read ------------------------------------------------------------------------------------
    def stored_offset(self, topic: str, partition: int) -> int | None:
        value = self.client.get(self._offset_key(topic, partition))
        return None if value is None else int(value)

    def sessions(self, ids: Iterable[int]) -> dict[int, bytes]:
        """Stored states of these sessions (absent ones are left out)."""
        ids = list(ids)
        if not ids:
            return {}
        blobs = self.client.mget([self._session_key(s) for s in ids])
        return {s: b.encode() if isinstance(b, str) else b
                for s, b in zip(ids, blobs, strict=True) if b is not None}

    def rows(self, wanted: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[int, int]]:
        """Several matrix rows in one round trip: (matrix, aid) → {neighbour: weight}."""
        wanted = list(dict.fromkeys(wanted))
        pipe = self.client.pipeline(transaction=False)
        for matrix, aid in wanted:
            pipe.hgetall(self._row_key(matrix, aid))
        return {key: {int(b): int(w) for b, w in raw.items()}
                for key, raw in zip(wanted, pipe.execute(), strict=True)}

    def row(self, matrix: str, aid: int) -> dict[int, int]:
        return self.rows([(matrix, aid)])[(matrix, aid)]

    def popularity_epoch(self) -> int:
        value = self.client.get(f"{self.prefix}pop:epoch")
        return -1 if value is None else int(value)

    def popular(self, kind: int, k: int) -> list[int]:
        """The same top list as :meth:`Popularity.top` over the same events, read from Redis."""
        epoch = self.popularity_epoch()
        if epoch < 0:
            return []
        return merged_top(k, self._side(epoch, kind), self._side(epoch - 1, kind))

    def _side(self, epoch: int, kind: int) -> TopSide:
        key, client = self._pop_key(epoch, kind), cast(Any, self.client)

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

    def live_sessions(self, limit: int) -> list[int]:
        """Recently active sessions, most recent first."""
        client = cast(Any, self.client)
        return [int(s) for s in client.zrevrange(f"{self.prefix}live", 0, limit - 1)]

    def events(self) -> int:
        """Events applied by all workers together."""
        return int(self.client.get(f"{self.prefix}events") or 0)

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

    # -- dump ------------------------------------------------------------------------------------
    def matrix(self, name: str) -> dict[int, dict[int, int]]:
        """A whole matrix (for dumps and tests)."""
        pattern = f"{self.prefix}cv:{name}:*"
        aids = [int(key.rsplit(b":", 1)[1])
                for key in self.client.scan_iter(match=pattern, count=1000)]
        out: dict[int, dict[int, int]] = {}
        for i in range(0, len(aids), 1000):
            rows = self.rows((name, aid) for aid in aids[i:i + 1000])
            out.update((aid, row) for (_, aid), row in rows.items())
        return out

    def export(self, k: int = 20) -> Iterator[dict[str, object]]:
        """Rows in the ``liverec covis`` format."""
        return export_rows(self.matrix("clicks"), self.matrix("carts_orders"),
                           self.matrix("buy2buy"), k)

