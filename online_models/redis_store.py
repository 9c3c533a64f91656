"""The shared state of the distributed runtime in Redis, summed from batch journals exactly once.

Each worker applies its own partitions' events and sends the batch's increments here:
co-visitation cells (:class:`~online_models.covisitation.CellJournal`) and popularity counts
(:meth:`~online_models.popularity.Popularity.take_journal`). Both are integer sums, so
appended row records and ``ZINCRBY`` from any number of workers, in any order, end at the
state one process would compute. Exactly once: a batch carries the offset range it covers per
(topic, partition); a Lua script applies it only if the stored offset of each partition is
where the batch starts, then moves those offsets to the batch's end, all atomically. A batch
replayed after a crash is refused, so nothing counts twice; one lost in a crash was never
stored, so Kafka redelivers it.

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

Row logs: a row is a string, a 16-byte ASCII header (the generation, bumped by each
compaction, and the log's length after its last compaction, 8 digits each) followed by
little-endian int64 records, one per increment; the row is the sum of its records per
neighbour. A batch adds its increments to a row with one ``APPEND``, where a hash took one
``HINCRBY`` per cell and matrix: a batch of 1,000 generated events touches some 800 rows
but 16,300 cells (``docs/production.md``, "Row logs"). A log more than four times as long as
after its last compaction (and past ``compact_min_bytes``) is named in the script's reply;
the worker then sums it and writes the sums back (:meth:`RedisStore.compact`), only if its
header shows no other compaction since it read it, keeping what was appended meanwhile.
Compacting changes no row.

The script builds the names of old popularity keys to delete from the prefix, which a Redis
Cluster would refuse; liverec's store is one Redis (with a replica for failover).
"""

from __future__ import annotations

import sys
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import msgpack
import numpy as np
import redis
import redis.asyncio

from online_models.covisitation import EPOCH_HALF_LIVES as COVIS_EPOCH_HALF_LIVES
from online_models.popularity import EPOCH_HALF_LIVES, KNOWN, TopSide, merged_top
from online_models.rows import (
    CO_BITS,
    CO_MASK,
    MATRICES,
    CellJournal,
    export_rows,
    fold_epochs,
)

#: Recently active sessions kept in ``{p}live``.
LIVE_SESSIONS = 1000
#: A watch lapses this long after its web node last renewed it (a node renews every third).
WATCH_TTL_MS = 30_000

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


def _glob_escaped(text: str) -> str:
    """``text`` matched literally in a Redis ``SCAN MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _fields(row: Mapping[int, int]) -> str:
    return ",".join([f"{key}:{value}" for key, value in row.items()])


#: A row log's header: generation and length after the last compaction, 8 ASCII digits each.
HEADER = 16
_INT64_MAX = (1 << 63) - 1
_LITTLE = sys.byteorder == "little"


def _int64s(values: list[int]) -> bytes:
    """Little-endian int64s (records of a row log)."""
    packed = array("q", values)
    if not _LITTLE:
        packed.byteswap()
    return packed.tobytes()


def pack_records(values: list[int], width: int) -> bytes:
    """Records of ``width`` int64s (neighbour, weights…); a weight past int64, which only a
    long-lived sum can reach, is split over several records of the same neighbour."""
    try:
        return _int64s(values)
    except OverflowError:
        split: list[int] = []
        for i in range(0, len(values), width):
            b, weights = values[i], values[i + 1:i + width]
            while True:
                split.append(b)
                split += [min(w, _INT64_MAX) for w in weights]
                weights = [w - min(w, _INT64_MAX) for w in weights]
                if not any(weights):
                    break
        return _int64s(split)


def _records_of(blob: bytes, width: int) -> np.ndarray:
    return np.frombuffer(blob, dtype="<i8", offset=HEADER).reshape(-1, width)


def _grouped(values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """A log's distinct neighbours, ascending, and per weight column their sums, in int64
    (a log of 2,700 records read in 0.49 ms against 1.16 with a dict loop); None when a
    sum might not fit int64, for the caller to sum in Python."""
    count = len(values)
    if not count or int(values[:, 1:].max()) > _INT64_MAX // count:
        return None
    order = np.argsort(values[:, 0], kind="stable")
    ordered = values[order]
    aids = ordered[:, 0]
    starts = np.flatnonzero(np.concatenate(([True], aids[1:] != aids[:-1])))
    return aids[starts], [np.add.reduceat(ordered[:, i], starts)
                          for i in range(1, values.shape[1])]


def log_sums(blob: bytes, width: int) -> list[dict[int, int]]:
    """A row log's sums: per weight column, neighbour → weight (records after the header)."""
    values = _records_of(blob, width)
    aids = values[:, 0].tolist()
    if len(set(aids)) == len(aids):  # compacted: one record per neighbour
        return [dict(zip(aids, values[:, i].tolist(), strict=True)) for i in range(1, width)]
    grouped = _grouped(values)
    if grouped is not None:
        keys = grouped[0].tolist()
        return [dict(zip(keys, column.tolist(), strict=True)) for column in grouped[1]]
    out: list[dict[int, int]] = [{} for _ in range(1, width)]
    for i, row in enumerate(out, start=1):
        for b, w in zip(aids, values[:, i].tolist(), strict=True):
            row[b] = row.get(b, 0) + w
    return out


def compacted_log(blob: bytes, width: int) -> bytes:
    """A row log as its compaction writes it: the next generation's header, then one record
    per neighbour with its sums."""
    grouped = _grouped(_records_of(blob, width))
    if grouped is not None:
        body = np.column_stack([grouped[0], *grouped[1]]).astype("<i8").tobytes()
    else:
        flat: list[int] = []
        sums = log_sums(blob, width)
        first, rest = sums[0], sums[1:]
        for b, w in first.items():
            flat.append(b)
            flat.append(w)
            flat += [column[b] for column in rest]
        body = pack_records(flat, width)
    generation = (int(blob[:8]) + 1) % 100_000_000
    return b"%08d%08d" % (generation, min(HEADER + len(body), 99_999_999)) + body


def _logs(journals: Sequence[CellJournal]) -> bytes:
    """The script's ``logs`` argument: per touched row, its increments as records, the
    ``all`` family's packed cells split into their clicks and carts_orders weights."""
    out: list[str | bytes] = []
    add = out.append
    for journal in journals:
        family = f"all:{journal.epoch}:"
        for aid, row in journal.pairs.items():
            if row:
                flat: list[int] = []
                for b, v in row.items():
                    flat += (b, v >> CO_BITS, v & CO_MASK)
                add(f"{family}{aid}")
                add(pack_records(flat, 3))
        for aid, row in journal.buys.items():
            if row:
                flat = []
                for b, v in row.items():
                    flat += (b, v)
                add(f"buy2buy:{journal.epoch}:{aid}")
                add(pack_records(flat, 2))
    return msgpack.packb(out, use_bin_type=False)


#: A session's write: its state without runs, its runs log's new bytes, and whether they
#: replace the log (else they are appended).
SessionWrite = tuple[bytes, bytes, bool]


@dataclass
class EncodedBatch:
    """A batch as the apply script takes it (:meth:`RedisStore.encode`)."""

    keys: list[str]
    args: list[int | str | bytes]
    offsets: dict[tuple[str, int], tuple[int, int]]
    compact: list[str] = field(default_factory=list)
    """Once applied: the row logs the script found due for compaction
    (:meth:`RedisStore.compact`)."""
    forgotten: list[int] = field(default_factory=list)
    """Once applied: the epochs this batch made the store forget (:meth:`RedisStore.forget`)."""


class OffsetConflict(RuntimeError):
    """A batch does not start where its partition's stored offset says the next one must."""


class RedisStore:
    """Apply journals exactly once; read rows, popularity and sessions; dump the matrices."""

    def __init__(self, client: redis.Redis, prefix: str = "", session_ttl_ms: int = 0,
                 epoch_shift: int = COVIS_EPOCH_HALF_LIVES, popularity_max_age_s: float = 0.0,
                 async_client: redis.asyncio.Redis | None = None,
                 compact_min_bytes: int = 16_384) -> None:
        self.client = client
        self.compact_min_bytes = compact_min_bytes
        """Row logs shorter than this are never due for compaction: summing a short log on
        read costs less than a compaction's two round trips."""
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
        self._compact = client.register_script(_COMPACT)
        self._async = async_client
        self._apply_async = (async_client.register_script(_APPLY)
                             if async_client is not None else None)

    @classmethod
    def from_url(cls, url: str, prefix: str = "", session_ttl_ms: int = 0,
                 epoch_shift: int = COVIS_EPOCH_HALF_LIVES) -> RedisStore:
        return cls(redis.Redis.from_url(url), prefix, session_ttl_ms, epoch_shift)

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

    # -- write -----------------------------------------------------------------------------------
    def apply(self, journal: CellJournal | Sequence[CellJournal],
              offsets: Mapping[tuple[str, int], tuple[int, int]],
              sessions: Mapping[int, bytes | SessionWrite] | None = None,
              popularity: Mapping[tuple[int, int], Mapping[int, int]] | None = None,
              live: Mapping[int, int] | None = None, events: int = 0,
              compact: bool = True) -> bool:
        """Add a batch's increments, store its sessions' states, if no part of it was applied
        before; then, with ``compact``, compact the row logs it made due.

        ``offsets`` maps (topic, partition) to the batch's (first, next) offsets; ``sessions``
        a session to its state (:meth:`SessionState.to_bytes`) or to a :data:`SessionWrite`
        (the state without runs, its runs log's new bytes, and whether they replace the log);
        ``popularity`` (epoch, kind) to {aid: count}; ``live`` session to its last event
        time. Returns False, changing nothing, when the batch was already applied; raises
        :class:`OffsetConflict` when it starts past a gap (events would be lost).
        """
        batch = self.encode(journal, offsets, sessions, popularity, live, events)
        applied = self.apply_encoded(batch)
        if applied and compact:
            self.compact(batch.compact)
            self.forget(batch.forgotten)
        return applied

    def apply_encoded(self, batch: EncodedBatch) -> bool:
        """:meth:`apply` an encoded batch, without compacting."""
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
        keys += [f"{self.prefix}pop:epoch", f"{self.prefix}live", f"{self.prefix}events",
                 f"{self.prefix}cv:epoch"]
        journals = [journal] if isinstance(journal, CellJournal) else list(journal)
        logs = _logs(journals)
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
        """What the script's reply means (see :meth:`apply`); keeps the row logs it found due
        for compaction in ``batch.compact``."""
        applied, index, stored = reply[:3]
        if applied:
            batch.compact = [name.decode() if isinstance(name, bytes) else name
                             for name in reply[3]]
            batch.forgotten = [int(epoch) for epoch in reply[4]]
            return True
        (topic, partition), (start, end) = list(batch.offsets.items())[index - 1]
        if int(stored) >= end:
            return False  # applied before: a redelivery after a crash or a rebalance
        raise OffsetConflict(f"{topic}[{partition}]: batch covers {start}..{end - 1} but the "
                             f"next offset to apply is {stored}")

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
        """Several matrix rows in one round trip: (matrix, aid) → {neighbour: weight}.

        ``clicks`` and ``carts_orders`` of one item come from the same logs, read once.
        """
        return self.rows_with_offset(wanted)[0]

    def rows_with_offset(self, wanted: Iterable[tuple[str, int]],
                         partition: tuple[str, int] | None = None
                         ) -> tuple[dict[tuple[str, int], dict[int, int]], int | None]:
        """:meth:`rows`, and with ``partition`` (topic, partition) its stored offset read in
        the same transaction: whether the rows include a batch whose script may have run
        meanwhile (a worker's batch in flight) is then known, not guessed."""
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

    def export(self, k: int = 20) -> Iterator[dict[str, object]]:
        """Rows in the ``liverec covis`` format."""
        return export_rows(self.matrix("clicks"), self.matrix("carts_orders"),
                           self.matrix("buy2buy"), k)

