"""The write side of the distributed store: a batch's increments applied exactly once.

Each worker applies its own partitions' events and sends the batch's increments here:
co-visitation cells (:class:`~online_models.covisitation.CellJournal`) and popularity counts
(:meth:`~online_models.popularity.Popularity.take_journal`). Both are integer sums, so
appended row records and ``ZINCRBY`` from any number of workers, in any order, end at the
state one process would compute. Exactly once: a batch carries the offset range it covers per
(topic, partition); a Lua script applies it only if the stored offset of each partition is
where the batch starts, then moves those offsets to the batch's end, all atomically. A batch
replayed after a crash is refused, so nothing counts twice; one lost in a crash was never
stored, so Kafka redelivers it.

One entry point applies a batch (:meth:`~distributed.store_api.SharedStore.apply`, or its
halves :meth:`BatchApply.encode` and :meth:`BatchApply.send_apply` for a worker's loop); the
compaction of row logs it made due and the deletion of forgotten epochs follow it. The key
layout is in :mod:`distributed.store`, the row-log format in :mod:`distributed.row_log`.

The script builds the names of old popularity keys to delete from the prefix, which a Redis
Cluster would refuse; liverec's store is one Redis (with a replica for failover).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis
import redis.asyncio

from distributed.row_log import HEADER, compacted_log, journal_logs
from distributed.store_api import (
    LIVE_SESSIONS,
    SessionWrite,
    SharedStore,
    StoreBatch,
    refusal,
)
from online_models.popularity import KNOWN
from online_models.rows import MATRICES, CellJournal

# KEYS: offset keys (n), per session its state key and its runs key (2s), then the popularity
# epoch key, the live set, the event counter and the co-visitation epoch key. ARGV: n, s, the
# batch's latest popularity epoch (-1: none), the key prefix, events, session ttl (ms, 0 =
# none), live sessions to keep, then
#   logs        one MessagePack array: per row "all:epoch:aid" or "buy2buy:epoch:aid", then the
#               records to append to its log (bytes: the aids and weights as int64, which
#               Lua never reads, so its doubles never round one),
#   popularity  "epoch:kind aid:inc,…" lines (ZINCRBY {p}pop:epoch:kind inc aid),
#   live        "session:ts,…" (ZADD {p}live ts session),
#   epochs      "epoch,…" (the co-visitation epochs of the batch: the latest becomes
#               {p}cv:epoch if later, the last two are {p}cv:epochs, increments of older
#               ones are ignored),
#   floor       logs shorter than this many bytes are never due for compaction;
# then (start, end) per offset key, and per session its state, how its runs change ('' none,
# 'a' append to the log, 's' replace the log) and the runs' bytes.
# A batch's increments travel in a few arguments, not two per row: redis-py encodes each
# argument in pure Python. The logs are packed by msgpack's C extension, as "raw" strings:
# Redis 7.0's cmsgpack does not read msgpack's bin type. A new log gets its header (generation
# 0, compacted length 16) by a SET after the APPEND that created it. Replies {1, 0, 0, logs due
# for compaction, epochs forgotten} when applied, {0, i, stored offset} when offset key i
# refuses the batch.
_APPLY = """
local n, s = tonumber(ARGV[1]), tonumber(ARGV[2])
local prefix = ARGV[4]
local arg = 13
for i = 1, n do
  local stored = tonumber(redis.call('GET', KEYS[i]) or ARGV[arg])
  if stored ~= tonumber(ARGV[arg]) then
    return {0, i, stored}
  end
  arg = arg + 2
end
local cv_epoch = KEYS[n + 2 * s + 4]
local kept = tonumber(redis.call('GET', cv_epoch) or '-1')
local forgotten = {}
for epoch in string.gmatch(ARGV[11], '%d+') do
  if tonumber(epoch) > kept then
    kept = tonumber(epoch)
  end
end
if kept > tonumber(redis.call('GET', cv_epoch) or '-1') then
  redis.call('SET', cv_epoch, kept)
  for _, old in ipairs(redis.call('SMEMBERS', prefix .. 'cv:epochs')) do
    if tonumber(old) < kept - 1 then
      redis.call('SREM', prefix .. 'cv:epochs', old)
      forgotten[#forgotten + 1] = old
    end
  end
end
for epoch in string.gmatch(ARGV[11], '%d+') do
  if tonumber(epoch) >= kept - 1 then
    redis.call('SADD', prefix .. 'cv:epochs', epoch)
  end
end
local logs = cmsgpack.unpack(ARGV[8])
local floor = tonumber(ARGV[12])
local compact = {}
for c = 1, #logs, 2 do
  if tonumber(string.match(logs[c], ':(%d+):')) >= kept - 1 then
    local key = prefix .. 'cv:' .. logs[c]
    local records = logs[c + 1]
    local size = redis.call('APPEND', key, records)
    if size == #records then
      redis.call('SET', key, '0000000000000016' .. records)
    -- Due at 4 times its compacted length: at 2, compactions took 7.0 µs per event of the
    -- worker's and Redis's time on the throughput benchmark's events, at 4, 4.2.
    elseif size > floor and size > 4 * tonumber(redis.call('GETRANGE', key, 8, 15)) then
      compact[#compact + 1] = logs[c]
    end
  end
end
local marker = KEYS[n + 2 * s + 1]
local current = tonumber(redis.call('GET', marker) or '-1')
local latest = tonumber(ARGV[3])
if latest > current then
  -- Only the epochs current - 1 and current exist: a jump of years deletes two, not years.
  if current >= 0 then
    for e = current - 1, math.min(current, latest - 2) do
      for kind = 0, 3 do
        redis.call('UNLINK', prefix .. 'pop:' .. e .. ':' .. kind)
      end
    end
  end
  redis.call('SET', marker, latest)
  current = latest
end
-- Known epochs, the same way: the latest two are kept.
local known_marker = prefix .. 'pop:known_epoch'
local known = tonumber(redis.call('GET', known_marker) or '-1')
local latest_known = known
for epoch in string.gmatch(ARGV[9], '(%d+):@KNOWN@ ') do
  latest_known = math.max(latest_known, tonumber(epoch))
end
if latest_known > known then
  if known >= 0 then
    for e = known - 1, math.min(known, latest_known - 2) do
      redis.call('UNLINK', prefix .. 'pop:known:' .. e)
    end
  end
  redis.call('SET', known_marker, latest_known)
  known = latest_known
end
for epoch, kind, fields in string.gmatch(ARGV[9], '(%d+):(%d+) (%S+)') do
  local key
  if kind == '@KNOWN@' then
    if tonumber(epoch) >= known - 1 then
      key = prefix .. 'pop:known:' .. epoch
    end
  elseif tonumber(epoch) >= current - 1 then
    key = prefix .. 'pop:' .. epoch .. ':' .. kind
  end
  if key then
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
arg = 13
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[arg + 1])
  arg = arg + 2
end
return {1, 0, 0, compact, forgotten}
""".replace("@KNOWN@", str(KNOWN))


# KEYS: a row log. ARGV: its header as the compaction read it, its new header and sums, and
# the length it read. Replaces what was read with the sums, keeping what was appended since;
# refused (0) when another compaction came first.
_COMPACT = """
if redis.call('GETRANGE', KEYS[1], 0, 15) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2] .. redis.call('GETRANGE', KEYS[1], tonumber(ARGV[3]), -1))
return 1
"""


def _encoded(batch: StoreBatch) -> EncodedBatch:
    if not isinstance(batch, EncodedBatch):
        raise TypeError(f"a batch for Redis is encoded by its store, not {type(batch).__name__}")
    return batch


def _glob_escaped(text: str) -> str:
    """``text`` matched literally in a Redis ``SCAN MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _fields(row: Mapping[int, int]) -> str:
    return ",".join([f"{key}:{value}" for key, value in row.items()])


@dataclass
class EncodedBatch(StoreBatch):
    """A batch as the apply script takes it (:meth:`BatchApply.encode`)."""

    keys: list[str] = field(default_factory=list)
    args: list[int | str | bytes] = field(default_factory=list)


class BatchApply(SharedStore):
    """Apply batches exactly once, compact the row logs they make due, forget old epochs;
    and the key names every part of the store shares."""

    def __init__(self, client: redis.Redis, prefix: str = "", session_ttl_ms: int = 0,
                 async_client: redis.asyncio.Redis | None = None,
                 compact_min_bytes: int = 16_384) -> None:
        self.client = client
        self.prefix = prefix
        self.compact_min_bytes = compact_min_bytes
        """Row logs shorter than this are never due for compaction: summing a short log on
        read costs less than a compaction's two round trips."""
        self.session_ttl_ms = session_ttl_ms
        """Session keys expire after this long without a change (0 = never): the event-time
        expiry of the in-memory store, in wall-clock time."""
        self._apply = client.register_script(_APPLY)
        self._compact = client.register_script(_COMPACT)
        self._async = async_client
        self._apply_async = (async_client.register_script(_APPLY)
                             if async_client is not None else None)

    # -- keys ------------------------------------------------------------------------------------
    @staticmethod
    def _family(matrix: str) -> str:
        """The log family a matrix is stored in: ``clicks`` and ``carts_orders`` share one."""
        if matrix == "buy2buy":
            return "buy2buy"
        if matrix in ("clicks", "carts_orders"):
            return "all"
        raise KeyError(f"unknown matrix {matrix!r}; expected one of {MATRICES}")

    def _log_key(self, family: str, aid: int, epoch: int) -> str:
        return f"{self.prefix}cv:{family}:{epoch}:{aid}"

    def _pop_key(self, epoch: int, kind: int) -> str:
        return f"{self.prefix}pop:{epoch}:{kind}"

    def _session_key(self, session: int) -> str:
        return f"{self.prefix}session:{session}"

    def _runs_key(self, session: int) -> str:
        return f"{self.prefix}runs:{session}"

    def _offset_key(self, topic: str, partition: int) -> str:
        return f"{self.prefix}offset:{topic}:{partition}"

    # -- write ------------------------------------------------------------------------------------
    def apply_encoded(self, batch: StoreBatch) -> bool:
        batch = _encoded(batch)
        return self.applied(batch, self._apply(keys=batch.keys, args=batch.args))

    def encode(self, journal: CellJournal | Sequence[CellJournal],
               offsets: Mapping[tuple[str, int], tuple[int, int]],
               sessions: Mapping[int, bytes | SessionWrite] | None = None,
               popularity: Mapping[tuple[int, int], Mapping[int, int]] | None = None,
               live: Mapping[int, int] | None = None, events: int = 0) -> EncodedBatch:
        """The script's keys and arguments for a batch (see :meth:`SharedStore.encode`).

        Apart so that a worker can encode a batch on its event loop and run the script
        without blocking it (:meth:`send_apply`).
        """
        sessions, popularity, live = sessions or {}, popularity or {}, live or {}
        keys = [self._offset_key(topic, partition) for topic, partition in offsets]
        for session in sessions:
            keys += [self._session_key(session), self._runs_key(session)]
        keys += [f"{self.prefix}pop:epoch", f"{self.prefix}live", f"{self.prefix}events",
                 f"{self.prefix}cv:epoch"]
        journals = [journal] if isinstance(journal, CellJournal) else list(journal)
        logs = journal_logs(journals)
        counts = "\n".join([f"{epoch}:{kind} {_fields(row)}"
                            for (epoch, kind), row in popularity.items() if row])
        latest = max((epoch for epoch, kind in popularity if kind != KNOWN), default=-1)
        args: list[int | str | bytes] = [len(offsets), len(sessions), latest, self.prefix,
                                         events, self.session_ttl_ms, LIVE_SESSIONS, logs,
                                         counts, _fields(live),
                                         ",".join(str(j.epoch) for j in journals),
                                         self.compact_min_bytes]
        for start, end in offsets.values():
            args += [start, end]
        for value in sessions.values():
            if isinstance(value, bytes):
                args += [value, "", ""]
            else:
                head, log, full = value
                args += [head, "s" if full else ("a" if log else ""), log]
        return EncodedBatch(dict(offsets), keys=keys, args=args)

    async def apply_async(self, batch: StoreBatch) -> bool:
        """Apply an encoded batch through the asyncio client: the event loop goes on while
        Redis runs the script."""
        batch = _encoded(batch)
        if self._apply_async is None:
            raise RuntimeError("RedisStore was made without an asyncio client")
        return self.applied(batch, await self._apply_async(keys=batch.keys, args=batch.args))

    async def send_apply(self, batch: StoreBatch) -> Callable[[], Awaitable[bool]]:
        """Send an encoded batch's script through the asyncio client now; return the wait for
        its outcome (:meth:`apply_encoded`'s).

        Apart from the wait so that a worker knows the script is on its way before it turns
        to CPU-bound work: a task that made the whole call would not write the script until
        the event loop was next idle, and Redis would sit idle meanwhile.
        """
        if self._async is None:
            raise RuntimeError("RedisStore was made without an asyncio client")
        batch = _encoded(batch)
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
        """What the script's reply means (see :meth:`apply_encoded`); keeps the row logs it
        found due for compaction in ``batch.compact``."""
        applied, index, stored = reply[:3]
        if applied:
            batch.compact = [name.decode() if isinstance(name, bytes) else name
                             for name in reply[3]]
            batch.forgotten = [int(epoch) for epoch in reply[4]]
            return True
        return refusal(batch, index, int(stored))

    def compact(self, logs: Iterable[str]) -> int:
        """Replace these row logs (named as in :attr:`EncodedBatch.compact`) by their sums,
        one record per neighbour; return how many were replaced.

        Safe beside any number of workers: a log is replaced only if its header shows no
        other compaction since it was read here, and what was appended meanwhile is kept.
        A compaction refused, or lost in a crash, leaves a longer log that reads the same.
        """
        keys = [f"{self.prefix}cv:{name}" for name in dict.fromkeys(logs)]
        if not keys:
            return 0
        blobs = cast(list[Any], self.client.mget(keys))
        pipe = self.client.pipeline(transaction=False)
        buys = f"{self.prefix}cv:buy2buy:"
        for key, blob in zip(keys, blobs, strict=True):
            if blob is None or len(blob) <= HEADER:
                continue
            summed = compacted_log(blob, 2 if key.startswith(buys) else 3)
            self._compact(keys=[key], args=[blob[:HEADER], summed, len(blob)], client=pipe)
        return sum(int(done) for done in pipe.execute())

    def forget(self, epochs: Iterable[int]) -> int:
        """Delete the row logs of forgotten epochs (:attr:`EncodedBatch.forgotten`); return
        how many. Reads ignore those epochs already, so this only gives the memory back: it
        scans the keyspace, once per epoch, away from the batch loop."""
        deleted = 0
        prefix = _glob_escaped(self.prefix)
        for epoch in epochs:
            for family in ("all", "buy2buy"):
                pattern = f"{prefix}cv:{family}:{int(epoch)}:*"
                batch: list[bytes] = []
                for key in self.client.scan_iter(match=pattern, count=10_000):
                    batch.append(key)
                    if len(batch) == 10_000:
                        deleted += cast(int, self.client.unlink(*batch))
                        batch = []
                if batch:
                    deleted += cast(int, self.client.unlink(*batch))
        return deleted
