"""Co-visitation matrices in Redis, summed from batch journals exactly once.

Each worker applies its own partitions' events and sends the batch's cell increments here
(:class:`~online_models.covisitation.CellJournal`). Cells are integer sums, so ``HINCRBY``
from any number of workers, in any order, ends at the matrices one process would compute.
Exactly once: a batch carries the offset range it covers per (topic, partition); a Lua script
applies it only if the stored offset of each partition is where the batch starts, then moves
those offsets to the batch's end, all atomically. A batch replayed after a crash is refused,
so nothing counts twice; one lost in a crash was never stored, so Kafka redelivers it.

Layout (``{p}`` = key prefix): hashes ``{p}cv:clicks:{aid}``, ``{p}cv:carts_orders:{aid}``,
``{p}cv:buy2buy:{aid}`` (neighbour → weight), strings ``{p}offset:{topic}:{partition}``
(the next offset to apply) and ``{p}session:{id}`` (a session's window and open runs, written
in the same script as the batch that changed it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import redis

from online_models.covisitation import MATRICES, CellJournal, export_rows

# KEYS: offset keys, then hash keys, then string keys. ARGV: n_offsets, n_strings, then
# (start, end) per offset key, then per hash key: field count followed by field, increment
# pairs, then one value per string key.
_APPLY = """
local n = tonumber(ARGV[1])
local strings = tonumber(ARGV[2])
for i = 1, n do
  local stored = tonumber(redis.call('GET', KEYS[i]) or ARGV[2 * i + 1])
  if stored ~= tonumber(ARGV[2 * i + 1]) then
    return {0, i, stored}
  end
end
local arg = 2 * n + 3
for k = n + 1, #KEYS - strings do
  local fields = tonumber(ARGV[arg])
  arg = arg + 1
  for _ = 1, fields do
    redis.call('HINCRBY', KEYS[k], ARGV[arg], ARGV[arg + 1])
    arg = arg + 2
  end
end
for k = #KEYS - strings + 1, #KEYS do
  redis.call('SET', KEYS[k], ARGV[arg])
  arg = arg + 1
end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[2 * i + 2])
end
return {1, 0, 0}
"""


class OffsetConflict(RuntimeError):
    """A batch does not start where its partition's stored offset says the next one must."""


class RedisMatrices:
    """The shared matrices: apply journals exactly once, read rows, dump them."""

    def __init__(self, client: redis.Redis, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self._apply = client.register_script(_APPLY)

    @classmethod
    def from_url(cls, url: str, prefix: str = "") -> RedisMatrices:
        return cls(redis.Redis.from_url(url), prefix)

    def _row_key(self, matrix: str, aid: int) -> str:
        return f"{self.prefix}cv:{matrix}:{aid}"

    def _session_key(self, session: int) -> str:
        return f"{self.prefix}session:{session}"

    def sessions(self, ids: list[int]) -> dict[int, bytes]:
        """Stored states of these sessions (absent ones are left out)."""
        if not ids:
            return {}
        blobs = self.client.mget([self._session_key(s) for s in ids])
        return {s: b.encode() if isinstance(b, str) else b
                for s, b in zip(ids, blobs, strict=True) if b is not None}

    def _offset_key(self, topic: str, partition: int) -> str:
        return f"{self.prefix}offset:{topic}:{partition}"

    def stored_offset(self, topic: str, partition: int) -> int | None:
        value = self.client.get(self._offset_key(topic, partition))
        return None if value is None else int(value)

    def apply(self, journal: CellJournal,
              offsets: Mapping[tuple[str, int], tuple[int, int]],
              sessions: Mapping[int, bytes] | None = None) -> bool:
        """Add a batch's increments (and store its sessions' states) if no part of it was
        applied before.

        ``offsets`` maps (topic, partition) to the batch's (first, next) offsets. Returns
        False, changing nothing, when the batch was already applied; raises
        :class:`OffsetConflict` when it starts past a gap (events would be lost).
        """
        sessions = sessions or {}
        keys: list[str] = []
        args: list[int | str | bytes] = [len(offsets), len(sessions)]
        for (topic, partition), (start, end) in offsets.items():
            keys.append(self._offset_key(topic, partition))
            args += [start, end]
        for name in MATRICES:
            for aid, row in journal.matrix(name).items():
                keys.append(self._row_key(name, aid))
                args.append(len(row))
                for neighbour, inc in row.items():
                    args += [neighbour, inc]
        for session, blob in sessions.items():
            keys.append(self._session_key(session))
            args.append(blob)
        applied, index, stored = self._apply(keys=keys, args=args)
        if applied:
            return True
        (topic, partition), (start, end) = list(offsets.items())[index - 1]
        if int(stored) >= end:
            return False  # applied before: a redelivery after a crash or a rebalance
        raise OffsetConflict(f"{topic}[{partition}]: batch covers {start}..{end - 1} but the "
                             f"next offset to apply is {stored}")

    def row(self, matrix: str, aid: int) -> dict[int, int]:
        raw = self.client.hgetall(self._row_key(matrix, aid))
        return {int(k): int(v) for k, v in raw.items()}

    def matrix(self, name: str) -> dict[int, dict[int, int]]:
        """A whole matrix (for dumps and tests)."""
        pattern = f"{self.prefix}cv:{name}:*"
        out: dict[int, dict[int, int]] = {}
        for key in self.client.scan_iter(match=pattern, count=1000):
            aid = int(key.rsplit(b":", 1)[1])
            out[aid] = self.row(name, aid)
        return out

    def export(self, k: int = 20) -> Iterator[dict[str, object]]:
        """Rows in the ``liverec covis`` format."""
        return export_rows(self.matrix("clicks"), self.matrix("carts_orders"),
                           self.matrix("buy2buy"), k)
