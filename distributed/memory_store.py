"""The shared store's contract in one process's memory.

:class:`MemoryStore` keeps what :class:`~distributed.store.RedisStore` keeps, by the same
rules (which epochs are kept, when a batch is refused, what expires), as plain dicts: sums per
epoch and row, counts per epoch and kind. The batch loop runs against it without Kafka or
Redis (``tests/test_batch_loop.py``), and the contract suite holds both stores to the same
answers (``tests/test_store_contract.py``, ``tests/test_store_reads.py``). It is not shared
between processes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from distributed.store_api import (
    LIVE_SESSIONS,
    WATCH_TTL_MS,
    Rows,
    SessionWrite,
    SharedStore,
    StoreBatch,
    refusal,
)
from online_models.covisitation import EPOCH_HALF_LIVES as COVIS_EPOCH_HALF_LIVES
from online_models.popularity import EPOCH_HALF_LIVES, KNOWN, TopSide, merged_top, sorted_head
from online_models.rows import CO_BITS, CO_MASK, MATRICES, CellJournal, fold_epochs

#: Per epoch, per aid: {neighbour: sum}.
Sums = dict[int, dict[int, dict[int, int]]]


@dataclass
class MemoryBatch(StoreBatch):
    """A batch as :meth:`MemoryStore.encode` keeps it: what was given, unchanged."""

    journals: list[CellJournal] = field(default_factory=list)
    sessions: dict[int, bytes | SessionWrite] = field(default_factory=dict)
    popularity: dict[tuple[int, int], dict[int, int]] = field(default_factory=dict)
    live: dict[int, int] = field(default_factory=dict)
    events: int = 0


def _add(sums: Sums, epoch: int, aid: int, neighbour: int, inc: int) -> None:
    """Add a record, even of weight 0: a row log has the neighbour then, as here."""
    row = sums.setdefault(epoch, {}).setdefault(aid, {})
    row[neighbour] = row.get(neighbour, 0) + inc


def _sum_into(total: dict[int, int], row: Mapping[int, int]) -> None:
    for neighbour, weight in row.items():
        total[neighbour] = total.get(neighbour, 0) + weight


def _dict_side(counts: Mapping[int, int]) -> TopSide:
    """One epoch's counts as :func:`merged_top` reads them: an exact sort (this store holds
    a test's or a single process's counts, not a shop's)."""
    return TopSide(partial(sorted_head, counts), lambda aids: [counts.get(a, 0) for a in aids])


class MemoryStore(SharedStore):
    """:class:`~distributed.store_api.SharedStore` in memory; wall-clock expiries (sessions,
    watches, lists) follow ``clock`` (seconds, :func:`time.monotonic` unless given)."""

    def __init__(self, prefix: str = "", session_ttl_ms: int = 0,
                 epoch_shift: int = COVIS_EPOCH_HALF_LIVES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix = prefix
        self.session_ttl_ms = session_ttl_ms
        self.epoch_shift = epoch_shift
        self.compact_min_bytes = 0  # nothing here is a log: nothing to compact
        self.clock = clock
        self.subscribers: list[Callable[[bytes], None]] = []
        """Called with every payload :meth:`publish_lists` announces (the lists channel)."""
        self._reset()

    def clear(self) -> int:
        entries = sum(len(table) for table in (
            self.offsets, self.clicks, self.carts_orders, self.buys, self.counts, self.states,
            self.live, self.models, self.watches, self.lists, self.reported))
        self._reset()
        return entries

    def _reset(self) -> None:
        self.offsets: dict[tuple[str, int], int] = {}
        self.clicks: Sums = {}
        self.carts_orders: Sums = {}
        self.buys: Sums = {}
        self.cv_epoch = -1
        self.cv_epochs: set[int] = set()
        self._read_epochs: list[int] = []
        self.counts: dict[tuple[int, int], dict[int, int]] = {}
        self.pop_epoch = self.known_epoch = -1
        self.states: dict[int, tuple[bytes, bytes | None, float | None]] = {}
        self.live: dict[int, int] = {}
        self.applied_events = 0
        self.models: dict[str, tuple[int, bytes]] = {}
        self.watches: dict[int, int] = {}
        self.lists: dict[int, tuple[bytes, float]] = {}
        self.secret: str | None = None
        self.reported: dict[tuple[str, str], tuple[bytes, int]] = {}

    # -- write ---------------------------------------------------------------------------------
    def encode(self, journal: CellJournal | Sequence[CellJournal],
               offsets: Mapping[tuple[str, int], tuple[int, int]],
               sessions: Mapping[int, bytes | SessionWrite] | None = None,
               popularity: Mapping[tuple[int, int], Mapping[int, int]] | None = None,
               live: Mapping[int, int] | None = None, events: int = 0) -> MemoryBatch:
        journals = [journal] if isinstance(journal, CellJournal) else list(journal)
        # Copies: the caller's journals and counts are its own to reuse.
        copied = []
        for j in journals:
            c = CellJournal(j.epoch)
            c.pairs = {a: dict(row) for a, row in j.pairs.items()}
            c.buys = {a: dict(row) for a, row in j.buys.items()}
            copied.append(c)
        return MemoryBatch(dict(offsets), journals=copied, sessions=dict(sessions or {}),
                           popularity={key: dict(row) for key, row in (popularity or {}).items()},
                           live=dict(live or {}), events=events)

    def apply_encoded(self, batch: StoreBatch) -> bool:
        if not isinstance(batch, MemoryBatch):
            raise TypeError(f"a batch for memory is encoded by its store, not "
                            f"{type(batch).__name__}")
        for index, (key, (start, _)) in enumerate(batch.offsets.items(), 1):
            stored = self.offsets.get(key, start)
            if stored != start:
                return refusal(batch, index, stored)
        batch.forgotten = self._apply_cells(batch.journals)
        self._apply_counts(batch.popularity)
        self._apply_sessions(batch.sessions, batch.live)
        self.applied_events += batch.events
        for key, (_, end) in batch.offsets.items():
            self.offsets[key] = end
        return True

    async def send_apply(self, batch: StoreBatch) -> Callable[[], Awaitable[bool]]:
        """Applies at once (nothing runs elsewhere); the outcome, or its error, waits."""
        try:
            outcome: bool | Exception = self.apply_encoded(batch)
        except Exception as exc:
            outcome = exc

        async def wait() -> bool:
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        return wait

    def _apply_cells(self, journals: list[CellJournal]) -> list[int]:
        """The co-visitation increments, by the rules of the Redis script: the latest epoch
        seen is kept with the one before it; older epochs are forgotten, and their
        increments ignored."""
        kept = max([self.cv_epoch, *(j.epoch for j in journals)])
        forgotten: list[int] = []
        if kept > self.cv_epoch:
            self.cv_epoch = kept
            forgotten = sorted(e for e in self.cv_epochs if e < kept - 1)
            self.cv_epochs -= set(forgotten)
        self.cv_epochs |= {j.epoch for j in journals if j.epoch >= kept - 1}
        for j in journals:
            if j.epoch < kept - 1:
                continue
            for aid, row in j.pairs.items():
                for b, packed in row.items():
                    if packed:  # a log holds no record of weights 0 and 0
                        _add(self.clicks, j.epoch, aid, b, packed >> CO_BITS)
                        _add(self.carts_orders, j.epoch, aid, b, packed & CO_MASK)
            for aid, row in j.buys.items():
                for b, inc in row.items():
                    if inc:
                        _add(self.buys, j.epoch, aid, b, inc)
        return forgotten

    def _apply_counts(self, popularity: Mapping[tuple[int, int], Mapping[int, int]]) -> None:
        """Popularity counts, by the script's rules: each clock (event epochs, known epochs)
        keeps its latest epoch and the one before."""
        latest = max((epoch for epoch, kind in popularity if kind != KNOWN), default=-1)
        if latest > self.pop_epoch:
            self.pop_epoch = latest
            self.counts = {k: v for k, v in self.counts.items()
                           if k[1] == KNOWN or k[0] >= latest - 1}
        known = max((epoch for (epoch, kind), row in popularity.items()
                     if kind == KNOWN and row), default=-1)
        if known > self.known_epoch:
            self.known_epoch = known
            self.counts = {k: v for k, v in self.counts.items()
                           if k[1] != KNOWN or k[0] >= known - 1}
        for (epoch, kind), row in popularity.items():
            floor = self.known_epoch if kind == KNOWN else self.pop_epoch
            if row and epoch >= floor - 1:
                _sum_into(self.counts.setdefault((epoch, kind), {}), row)

    def _apply_sessions(self, sessions: Mapping[int, bytes | SessionWrite],
                        live: Mapping[int, int]) -> None:
        until = (self.clock() + self.session_ttl_ms / 1000) if self.session_ttl_ms else None
        for session, value in sessions.items():
            stored = self._state(session)
            runs = stored[1] if stored is not None else None
            if isinstance(value, bytes):
                head = value
            else:
                head, log, full = value
                if full:
                    runs = log
                elif log:
                    runs = (runs or b"") + log
            self.states[session] = (head, runs, until)
        if live:
            self.live.update(live)
            if len(self.live) > LIVE_SESSIONS:
                ranked = sorted(self.live.items(), key=lambda st: (st[1], str(st[0])))
                for session, _ in ranked[:len(self.live) - LIVE_SESSIONS]:
                    del self.live[session]

    def compact(self, logs: Iterable[str]) -> int:
        return 0  # sums are kept summed

    def forget(self, epochs: Iterable[int]) -> int:
        dropped = 0
        for epoch in epochs:
            for sums in (self.clicks, self.carts_orders, self.buys):
                if epoch not in self.cv_epochs:
                    dropped += len(sums.pop(epoch, {}))
        return dropped

    # -- read ----------------------------------------------------------------------------------
    def _state(self, session: int) -> tuple[bytes, bytes | None] | None:
        entry = self.states.get(session)
        if entry is None:
            return None
        if entry[2] is not None and entry[2] <= self.clock():
            del self.states[session]
            return None
        return entry[0], entry[1]

    def stored_offset(self, topic: str, partition: int) -> int | None:
        return self.offsets.get((topic, partition))

    def session_states(self, ids: Iterable[int]) -> dict[int, tuple[bytes, bytes | None]]:
        return {s: state for s in ids if (state := self._state(s)) is not None}

    def sessions(self, ids: Iterable[int]) -> dict[int, bytes]:
        return {s: state[0] for s in ids if (state := self._state(s)) is not None}

    def rows_with_offset(self, wanted: Iterable[tuple[str, int]],
                         partition: tuple[str, int] | None = None) -> tuple[Rows, int | None]:
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return {}, None
        epochs = self._read_epochs = sorted(self.cv_epochs)
        out: Rows = {}
        for matrix, aid in wanted:
            if matrix not in MATRICES:
                raise KeyError(f"unknown matrix {matrix!r}; expected one of {MATRICES}")
            if matrix == "clicks":
                folded = fold_epochs({e: self.clicks.get(e, {}).get(aid, {}) for e in epochs},
                                     self.epoch_shift)
                out[(matrix, aid)] = {b: w for b, w in folded.items() if w}
                continue
            sums = self.buys if matrix == "buy2buy" else self.carts_orders
            total: dict[int, int] = {}
            for epoch in epochs:
                _sum_into(total, sums.get(epoch, {}).get(aid, {}))
            out[(matrix, aid)] = total
        offset = None if partition is None else self.offsets.get(partition)
        return out, offset

    @property
    def clicks_epoch(self) -> int | None:
        return self._read_epochs[-1] if self._read_epochs else None

    def popular(self, kind: int, k: int) -> list[int]:
        if kind == KNOWN:
            if self.known_epoch < 0:
                return []
            return merged_top(k, _dict_side(self.counts.get((self.known_epoch, KNOWN), {})),
                              _dict_side(self.counts.get((self.known_epoch - 1, KNOWN), {})),
                              shift=0)
        if self.pop_epoch < 0:
            return []
        return merged_top(k, _dict_side(self.counts.get((self.pop_epoch, kind), {})),
                          _dict_side(self.counts.get((self.pop_epoch - 1, kind), {})))

    def popularity_scores(self, kinds: Sequence[int],
                          aids: Sequence[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for kind in kinds:
            now = self.counts.get((self.pop_epoch, kind), {})
            before = self.counts.get((self.pop_epoch - 1, kind), {})
            out[kind] = [now.get(a, 0) + (before.get(a, 0) >> EPOCH_HALF_LIVES) for a in aids]
        return out

    def _live_ranked(self) -> list[tuple[int, int]]:
        return sorted(self.live.items(), key=lambda st: (st[1], str(st[0])), reverse=True)

    def live_sessions(self, limit: int) -> list[int]:
        return [s for s, _ in self._live_ranked()[:limit]]

    def latest_event_ts(self) -> int | None:
        return max(self.live.values(), default=None)

    def events(self) -> int:
        return self.applied_events

    def matrix(self, name: str) -> dict[int, dict[int, int]]:
        if name not in MATRICES:
            raise KeyError(f"unknown matrix {name!r}; expected one of {MATRICES}")
        sums = {"clicks": self.clicks, "carts_orders": self.carts_orders,
                "buy2buy": self.buys}[name]
        aids = sorted({aid for epoch, rows in sums.items() if epoch in self.cv_epochs
                       for aid in rows})
        rows = self.rows((name, aid) for aid in aids)
        return {aid: row for (_, aid), row in rows.items() if row}

    # -- learned models ------------------------------------------------------------------------
    def save_model(self, name: str, snapshot: bytes) -> int:
        version = self.model_version(name) + 1
        self.models[name] = (version, snapshot)
        return version

    def model_version(self, name: str) -> int:
        return self.models.get(name, (0, b""))[0]

    def model(self, name: str) -> tuple[int, bytes] | None:
        return self.models.get(name)

    # -- watched sessions and their lists ------------------------------------------------------
    def watch(self, sessions: Iterable[int], now_ms: int) -> None:
        self.watches.update((s, now_ms + WATCH_TTL_MS) for s in sessions)

    def watched(self, sessions: Iterable[int], now_ms: int) -> list[int]:
        return [s for s in sessions if self.watches.get(s, -1) >= now_ms]

    def forget_lapsed_watches(self, now_ms: int) -> int:
        lapsed = [s for s, until in self.watches.items() if until < now_ms]
        for session in lapsed:
            del self.watches[session]
        return len(lapsed)

    def publish_lists(self, payloads: Mapping[int, bytes]) -> None:
        until = self.clock() + WATCH_TTL_MS / 1000
        for session, payload in payloads.items():
            self.lists[session] = (payload, until)
            for subscriber in self.subscribers:
                subscriber(payload)

    def stored_lists(self, session: int) -> tuple[bytes | None, bytes | None]:
        entry = self.lists.get(session)
        lists = entry[0] if entry is not None and entry[1] > self.clock() else None
        state = self._state(session)
        return lists, (state[0] if state else None)

    # -- the deployment ------------------------------------------------------------------------
    def report(self, kind: str, name: str, body: bytes, until_ms: int) -> None:
        self.reported[(kind, name)] = (body, until_ms)

    def reports(self, kind: str, now_ms: int) -> dict[str, bytes]:
        current = {}
        for (k, name), (body, until) in list(self.reported.items()):
            if k != kind:
                continue
            if until > now_ms:
                current[name] = body
            else:
                del self.reported[(k, name)]
        return current

    def shared_secret(self, candidate: str) -> str:
        if self.secret is None:
            self.secret = candidate
        return self.secret
