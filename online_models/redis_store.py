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

* ``{p}cv:{matrix}:{aid}``: hash, neighbour → weight (``carts_orders``, ``buy2buy``);
  ``{p}cv:clicks:{epoch}:{aid}``: the clicks weights added in the scale of one clicks epoch,
  folded into one row when read (:func:`~online_models.covisitation.fold_epochs`: a shift
  is not an increment, so epochs cannot share a hash); ``{p}cv:epochs``: the epochs in use;
* ``{p}pop:{epoch}:{kind}``: sorted set, aid → integer count of that epoch (kinds 0–2 the event
  types, 3 all of them); ``{p}pop:epoch``: the latest epoch (older ones are deleted);
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

The script builds the names of old popularity keys to delete from the prefix, which a Redis
Cluster would refuse; liverec's store is one Redis (with a replica for failover).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgpack
import redis
import redis.asyncio

from online_models.popularity import EPOCH_HALF_LIVES, TopSide, merged_top
from online_models.rows import CO_BITS, CO_MASK, CellJournal, export_rows, fold_epochs

#: Recently active sessions kept in ``{p}live``.
LIVE_SESSIONS = 1000
#: A watch lapses this long after its web node last renewed it (a node renews every third).
WATCH_TTL_MS = 30_000

# KEYS: offset keys (n), per session its state key and its runs key (2s), then the popularity
# epoch key, the live set and the event counter. ARGV: n, s, the batch's latest popularity
# epoch (-1: none), the key prefix, events, session ttl (ms, 0 = none), live sessions to keep,
# then
#   cells       one MessagePack array: per row "matrix:aid", its cell count m, then m pairs
#               "b", "inc" (HINCRBY {p}cv:matrix:aid b inc; strings, so that Lua's doubles
#               never round one, and because Redis formats a number argument with snprintf:
#               integers below 2^53 made the script 2x slower per cell, not worth the
#               worker's 6 µs/event saved by not calling str()),
#   popularity  "epoch:kind aid:inc,…" lines (ZINCRBY {p}pop:epoch:kind inc aid),
#   live        "session:ts,…" (ZADD {p}live ts session),
#   epochs      "epoch,…" (SADD {p}cv:epochs epoch: the clicks epochs of the batch);
# then (start, end) per offset key, and per session its state, how its runs change ('' none,
# 'a' append to the log, 's' replace the log) and the runs' bytes.
# A batch's increments travel in a few arguments, not two per cell: redis-py encodes each
# argument in pure Python. Cells, some 16 per event, are packed by msgpack's C extension and
# unpacked by Redis's cmsgpack into a Lua table: 1.9 µs a cell in Redis against 3.1 when the
# script matched them out of text (docs/production.md).
_APPLY = """
local n, s = tonumber(ARGV[1]), tonumber(ARGV[2])
local prefix = ARGV[4]
local arg = 12
for i = 1, n do
  local stored = tonumber(redis.call('GET', KEYS[i]) or ARGV[arg])
  if stored ~= tonumber(ARGV[arg]) then
    return {0, i, stored}
  end
  arg = arg + 2
end
for epoch in string.gmatch(ARGV[11], '%d+') do
  redis.call('SADD', prefix .. 'cv:epochs', epoch)
end
local cells = cmsgpack.unpack(ARGV[8])
local c, cn = 1, #cells
while c <= cn do
  local key = prefix .. 'cv:' .. cells[c]
  local last = c + 2 * cells[c + 1]
  for j = c + 2, last, 2 do
    redis.call('HINCRBY', key, cells[j], cells[j + 1])
  end
  c = last + 2
end
local marker = KEYS[n + 2 * s + 1]
local current = tonumber(redis.call('GET', marker) or '-1')
local latest = tonumber(ARGV[3])
if latest > current then
  if current >= 0 then
    for e = current - 1, latest - 2 do
      for kind = 0, 3 do
        redis.call('UNLINK', prefix .. 'pop:' .. e .. ':' .. kind)
      end
    end
  end
  redis.call('SET', marker, latest)
  current = latest
end
for epoch, kind, fields in string.gmatch(ARGV[9], '(%d+):(%d+) (%S+)') do
  if tonumber(epoch) >= current - 1 then
    local key = prefix .. 'pop:' .. epoch .. ':' .. kind
    for aid, inc in string.gmatch(fields, '(%d+):(%d+)') do
      redis.call('ZINCRBY', key, inc, aid)
    end
  end
end
local ttl = tonumber(ARGV[6])
for k = n + 1, n + 2 * s, 2 do
  local runs, mode = KEYS[k + 1], ARGV[arg + 1]
  if mode == 'a' then
    redis.call('APPEND', runs, ARGV[arg + 2])
  elseif mode == 's' then
    redis.call('SET', runs, ARGV[arg + 2])
  end
  if ttl > 0 then
    redis.call('SET', KEYS[k], ARGV[arg], 'PX', ttl)
    redis.call('PEXPIRE', runs, ttl)
  else
    redis.call('SET', KEYS[k], ARGV[arg])
  end
  arg = arg + 3
end
local live = KEYS[n + 2 * s + 2]
if ARGV[10] ~= '' then
  for session, ts in string.gmatch(ARGV[10], '(%d+):(%d+)') do
    redis.call('ZADD', live, ts, session)
  end
  redis.call('ZREMRANGEBYRANK', live, 0, -tonumber(ARGV[7]) - 1)
end
redis.call('INCRBY', KEYS[n + 2 * s + 3], ARGV[5])
arg = 12
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[arg + 1])
  arg = arg + 2
end
return {1, 0, 0}
"""


def _ints(raw: Mapping[bytes, bytes]) -> dict[int, int]:
    return {int(k): int(v) for k, v in raw.items()}


def _fields(row: Mapping[int, int]) -> str:
    return ",".join([f"{key}:{value}" for key, value in row.items()])


def _cells(journals: Sequence[CellJournal]) -> bytes:
    """The script's ``cells`` argument: packed ``all``-family cells split into their clicks
    and carts_orders halves as they are written (decoding each matrix into new dicts first
    cost a third more, on the worker's hot path)."""
    out: list[str | int] = []
    add = out.append
    for journal in journals:
        # Per matrix: its key's start, its rows, and how a stored value yields its weight
        # (value >> shift & mask; -1 keeps every bit).
        for name, rows, shift, mask in ((f"clicks:{journal.epoch}:", journal.pairs, CO_BITS, -1),
                                        ("carts_orders:", journal.pairs, 0, CO_MASK),
                                        ("buy2buy:", journal.buys, 0, -1)):
            for aid, row in rows.items():
                if row:
                    add(f"{name}{aid}")
                    add(len(row))
                    for b, v in row.items():
                        add(str(b))
                        add(str(v >> shift & mask))
    return msgpack.packb(out)


#: A session's write: its state without runs, its runs log's new bytes, and whether they
#: replace the log (else they are appended).
SessionWrite = tuple[bytes, bytes, bool]


@dataclass
class EncodedBatch:
    """A batch as the apply script takes it (:meth:`RedisStore.encode`)."""

    keys: list[str]
    args: list[int | str | bytes]
    offsets: dict[tuple[str, int], tuple[int, int]]


class OffsetConflict(RuntimeError):
    """A batch does not start where its partition's stored offset says the next one must."""


class RedisStore:
    """Apply journals exactly once; read rows, popularity and sessions; dump the matrices."""

    def __init__(self, client: redis.Redis, prefix: str = "", session_ttl_ms: int = 0,
                 epoch_shift: int = 32, popularity_max_age_s: float = 0.0,
                 async_client: redis.asyncio.Redis | None = None) -> None:
        self.client = client
        self.popularity_max_age_s = popularity_max_age_s
        """Reuse a popularity list read this recently (0: always read). Workers pushing live
        lists use a second: the fill of short sessions may lag popularity by that much, and a
        fresh read costs several round trips per list type."""
        self._popular: dict[int, tuple[float, int, list[int]]] = {}
        self.prefix = prefix
        self.epoch_shift = epoch_shift
        """Bits a clicks weight loses per epoch (``CovisConfig.epoch_half_lives``)."""
        self._epochs: list[int] = []  # clicks epochs as last read
        self.session_ttl_ms = session_ttl_ms
        """Session keys expire after this long without a change (0 = never): the event-time
        expiry of the in-memory store, in wall-clock time."""
        self._apply = client.register_script(_APPLY)
        self._async = async_client
        self._apply_async = (async_client.register_script(_APPLY)
                             if async_client is not None else None)

    @classmethod
    def from_url(cls, url: str, prefix: str = "", session_ttl_ms: int = 0,
                 epoch_shift: int = 32) -> RedisStore:
        return cls(redis.Redis.from_url(url), prefix, session_ttl_ms, epoch_shift)

    # -- keys ------------------------------------------------------------------------------------
    @staticmethod
    def _row_suffix(matrix: str, epoch: int) -> str:
        return f"clicks:{epoch}:" if matrix == "clicks" else f"{matrix}:"

    def _row_key(self, matrix: str, aid: int, epoch: int = 0) -> str:
        return f"{self.prefix}cv:{self._row_suffix(matrix, epoch)}{aid}"

    def _pop_key(self, epoch: int, kind: int) -> str:
        return f"{self.prefix}pop:{epoch}:{kind}"

    def _session_key(self, session: int) -> str:
        return f"{self.prefix}session:{session}"

    def _runs_key(self, session: int) -> str:
        return f"{self.prefix}runs:{session}"

    def _offset_key(self, topic: str, partition: int) -> str:
        return f"{self.prefix}offset:{topic}:{partition}"

    # -- write -----------------------------------------------------------------------------------
    def apply(self, journal: CellJournal | Sequence[CellJournal],
              offsets: Mapping[tuple[str, int], tuple[int, int]],
              sessions: Mapping[int, bytes | SessionWrite] | None = None,
              popularity: Mapping[tuple[int, int], Mapping[int, int]] | None = None,
              live: Mapping[int, int] | None = None, events: int = 0) -> bool:
        """Add a batch's increments, store its sessions' states, if no part of it was applied
        before.

        ``offsets`` maps (topic, partition) to the batch's (first, next) offsets; ``sessions``
        a session to its state (:meth:`SessionState.to_bytes`) or to a :data:`SessionWrite`
        (the state without runs, its runs log's new bytes, and whether they replace the log);
        ``popularity`` (epoch, kind) to {aid: count}; ``live`` session to its last event
        time. Returns False, changing nothing, when the batch was already applied; raises
        :class:`OffsetConflict` when it starts past a gap (events would be lost).
        """
        batch = self.encode(journal, offsets, sessions, popularity, live, events)
        return self.applied(batch, self._apply(keys=batch.keys, args=batch.args))

    def encode(self, journal: CellJournal | Sequence[CellJournal],
               offsets: Mapping[tuple[str, int], tuple[int, int]],
               sessions: Mapping[int, bytes | SessionWrite] | None = None,
               popularity: Mapping[tuple[int, int], Mapping[int, int]] | None = None,
               live: Mapping[int, int] | None = None, events: int = 0) -> EncodedBatch:
        """The script's keys and arguments for :meth:`apply`'s batch.

        Apart so that a worker can encode a batch on its event loop and run the script
        without blocking it (:meth:`apply_async`).
        """
        sessions, popularity, live = sessions or {}, popularity or {}, live or {}
        keys = [self._offset_key(topic, partition) for topic, partition in offsets]
        for session in sessions:
            keys += [self._session_key(session), self._runs_key(session)]
        keys += [f"{self.prefix}pop:epoch", f"{self.prefix}live", f"{self.prefix}events"]
        journals = [journal] if isinstance(journal, CellJournal) else list(journal)
        cells = _cells(journals)
        counts = "\n".join([f"{epoch}:{kind} {_fields(row)}"
                            for (epoch, kind), row in popularity.items() if row])
        latest = max((epoch for epoch, _ in popularity), default=-1)
        args: list[int | str | bytes] = [len(offsets), len(sessions), latest, self.prefix,
                                         events, self.session_ttl_ms, LIVE_SESSIONS, cells,
                                         counts, _fields(live),
                                         ",".join(str(j.epoch) for j in journals)]
        for start, end in offsets.values():
            args += [start, end]
        for value in sessions.values():
            if isinstance(value, bytes):
                args += [value, "", ""]
            else:
                head, log, full = value
                args += [head, "s" if full else ("a" if log else ""), log]
        return EncodedBatch(keys, args, dict(offsets))

    async def apply_async(self, batch: EncodedBatch) -> bool:
        """:meth:`apply` an encoded batch through the asyncio client: the event loop goes on
        while Redis runs the script."""
        if self._apply_async is None:
            raise RuntimeError("RedisStore was made without an asyncio client")
        return self.applied(batch, await self._apply_async(keys=batch.keys, args=batch.args))

    async def send_apply(self, batch: EncodedBatch) -> Callable[[], Awaitable[bool]]:
        """Send an encoded batch's script through the asyncio client now; return the wait for
        its outcome (:meth:`apply`'s).

        Apart from the wait so that a worker knows the script is on its way before it turns
        to CPU-bound work: a task that made the whole call would not write the script until
        the event loop was next idle, and Redis would sit idle meanwhile.
        """
        if self._async is None:
            raise RuntimeError("RedisStore was made without an asyncio client")
        pool = self._async.connection_pool
        connection = await pool.get_connection()
        try:
            # EVAL, not EVALSHA: nothing to reload after a Redis restart; Redis compiles a
            # script body once and finds it again by its digest.
            await connection.send_command("EVAL", _APPLY, len(batch.keys), *batch.keys,
                                          *batch.args)
        except BaseException:
            await connection.disconnect()
            await pool.release(connection)
            raise

        async def outcome() -> bool:
            try:
                reply = await connection.read_response()
            except BaseException:
                await connection.disconnect()  # a reply may be left unread
                raise
            finally:
                await pool.release(connection)
            return self.applied(batch, reply)

        return outcome

    @staticmethod
    def applied(batch: EncodedBatch, reply: Any) -> bool:
        """What the script's reply means (see :meth:`apply`)."""
        applied, index, stored = reply
        if applied:
            return True
        (topic, partition), (start, end) = list(batch.offsets.items())[index - 1]
        if int(stored) >= end:
            return False  # applied before: a redelivery after a crash or a rebalance
        raise OffsetConflict(f"{topic}[{partition}]: batch covers {start}..{end - 1} but the "
                             f"next offset to apply is {stored}")

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

    def rows(self, wanted: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[int, int]]:
        """Several matrix rows in one round trip: (matrix, aid) → {neighbour: weight}."""
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return {}
        while True:
            epochs = self._epochs
            pipe = self.client.pipeline(transaction=False)
            pipe.smembers(f"{self.prefix}cv:epochs")
            for matrix, aid in wanted:
                for epoch in (epochs if matrix == "clicks" else (0,)):
                    pipe.hgetall(self._row_key(matrix, aid, epoch))
            replies = pipe.execute()
            self._epochs = sorted(int(e) for e in replies[0])
            if self._epochs == epochs:  # else a new epoch began since last read: again
                break
        out: dict[tuple[str, int], dict[int, int]] = {}
        position = 1
        for matrix, aid in wanted:
            if matrix != "clicks":
                out[(matrix, aid)] = _ints(replies[position])
                position += 1
                continue
            per_epoch = {e: _ints(replies[position + i]) for i, e in enumerate(epochs)}
            position += len(epochs)
            out[(matrix, aid)] = fold_epochs(per_epoch, self.epoch_shift)
        return out

    @property
    def clicks_epoch(self) -> int | None:
        """The latest clicks epoch as last read: the scale clicks rows were folded to."""
        return self._epochs[-1] if self._epochs else None

    def row(self, matrix: str, aid: int) -> dict[int, int]:
        return self.rows([(matrix, aid)])[(matrix, aid)]

    def popularity_epoch(self) -> int:
        value = self.client.get(f"{self.prefix}pop:epoch")
        return -1 if value is None else int(value)

    def popular(self, kind: int, k: int) -> list[int]:
        """The same top list as :meth:`Popularity.top` over the same events, read from Redis."""
        if self.popularity_max_age_s:
            read, size, cached = self._popular.get(kind, (0.0, 0, []))
            if size >= k and time.monotonic() - read < self.popularity_max_age_s:
                return cached[:k]
        epoch = self.popularity_epoch()
        if epoch < 0:
            return []
        top = merged_top(k, self._side(epoch, kind), self._side(epoch - 1, kind))
        if self.popularity_max_age_s:
            self._popular[kind] = (time.monotonic(), k, top)
        return top

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
        pattern = f"{self.prefix}cv:{self._row_suffix(name, 0).split(':')[0]}:*"
        aids = sorted({int(key.rsplit(b":", 1)[1])
                       for key in self.client.scan_iter(match=pattern, count=1000)})
        out: dict[int, dict[int, int]] = {}
        for i in range(0, len(aids), 1000):
            rows = self.rows((name, aid) for aid in aids[i:i + 1000])
            out.update((aid, row) for (_, aid), row in rows.items())
        return out

    def export(self, k: int = 20) -> Iterator[dict[str, object]]:
        """Rows in the ``liverec covis`` format."""
        return export_rows(self.matrix("clicks"), self.matrix("carts_orders"),
                           self.matrix("buy2buy"), k)

