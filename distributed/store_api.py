"""What the distributed runtime needs of its shared store, whatever holds it.

Two stores implement :class:`SharedStore`: :class:`~distributed.store.RedisStore`, shared by
every worker and web node of a deployment, and :class:`~distributed.memory_store.MemoryStore`,
the same contract in one process's memory (a worker's batch loop runs against it in tests,
without Kafka or Redis). One contract suite (``tests/test_store_contract.py``,
``tests/test_store_reads.py``) runs against both: whatever passes there, the batch loop and
the serving views may rely on.

The contract, in short: a batch's increments are applied exactly once, keyed by the offsets
it covers; every sum is an integer, so batches from any number of workers, in any order, end
at the state one process computes; reads see only the last two epochs of each clock (older
ones are forgotten).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from online_models.rows import CellJournal, export_rows

#: Recently active sessions kept for the storefront (``live_sessions``).
LIVE_SESSIONS = 1000
#: A watch lapses this long after its web node last renewed it (a node renews every third).
WATCH_TTL_MS = 30_000

#: A session's write: its state without runs, its runs log's new bytes, and whether they
#: replace the log (else they are appended).
SessionWrite = tuple[bytes, bytes, bool]
#: Rows by (matrix, aid): {neighbour: weight}.
Rows = dict[tuple[str, int], dict[int, int]]


@dataclass
class StoreBatch:
    """A batch as a store takes it (:meth:`SharedStore.encode`): ready to apply, and once
    applied, what it left to do apart from the batch loop."""

    offsets: dict[tuple[str, int], tuple[int, int]]
    """Per (topic, partition), the batch's first and next offsets."""
    compact: list[str] = field(default_factory=list)
    """Once applied: the row logs it found due for compaction (:meth:`SharedStore.compact`)."""
    forgotten: list[int] = field(default_factory=list)
    """Once applied: the epochs it made the store forget (:meth:`SharedStore.forget`)."""


class OffsetConflict(RuntimeError):
    """A batch does not start where its partition's stored offset says the next one must."""


def refusal(batch: StoreBatch, index: int, stored: int) -> bool:
    """What a refused batch means: False when offset ``index`` (1-based) shows it applied
    before (a redelivery after a crash or a rebalance); :class:`OffsetConflict` when it starts
    past a gap (events would be lost)."""
    (topic, partition), (start, end) = list(batch.offsets.items())[index - 1]
    if stored >= end:
        return False
    raise OffsetConflict(f"{topic}[{partition}]: batch covers {start}..{end - 1} but the "
                         f"next offset to apply is {stored}")


class SharedStore(ABC):
    """The shared state of the distributed runtime: matrices, popularity, sessions, offsets,
    learned models, watches and lists."""

    prefix: str
    """What names this deployment's state (the key prefix in Redis)."""
    epoch_shift: int
    """Bits a clicks weight loses per epoch (``CovisConfig.epoch_half_lives``)."""
    compact_min_bytes: int
    """Row logs shorter than this are never due for compaction."""

    # -- write: one batch, exactly once ------------------------------------------------------
    @abstractmethod
    def encode(self, journal: CellJournal | Sequence[CellJournal],
               offsets: Mapping[tuple[str, int], tuple[int, int]],
               sessions: Mapping[int, bytes | SessionWrite] | None = None,
               popularity: Mapping[tuple[int, int], Mapping[int, int]] | None = None,
               live: Mapping[int, int] | None = None, events: int = 0) -> StoreBatch:
        """A batch ready to apply: ``offsets`` maps (topic, partition) to its (first, next)
        offsets; ``sessions`` a session to its state (:meth:`SessionState.to_bytes`) or to a
        :data:`SessionWrite`; ``popularity`` (epoch, kind) to {aid: count}; ``live`` a
        session to its last event time; ``events`` how many events it holds."""

    @abstractmethod
    def apply_encoded(self, batch: StoreBatch) -> bool:
        """Apply a batch if no part of it was applied before, atomically with its offsets.
        False, changing nothing, when it was applied before; :class:`OffsetConflict` when it
        starts past a gap."""

    @abstractmethod
    async def send_apply(self, batch: StoreBatch) -> Callable[[], Awaitable[bool]]:
        """Start applying a batch now; return the wait for :meth:`apply_encoded`'s outcome.
        The batch loop goes on with the next batch meanwhile."""

    async def apply_async(self, batch: StoreBatch) -> bool:
        """:meth:`apply_encoded` without blocking the event loop."""
        return await (await self.send_apply(batch))()

    def apply(self, journal: CellJournal | Sequence[CellJournal],
              offsets: Mapping[tuple[str, int], tuple[int, int]],
              sessions: Mapping[int, bytes | SessionWrite] | None = None,
              popularity: Mapping[tuple[int, int], Mapping[int, int]] | None = None,
              live: Mapping[int, int] | None = None, events: int = 0,
              compact: bool = True) -> bool:
        """:meth:`encode` and :meth:`apply_encoded` a batch; then, with ``compact``, do what
        it left to do (:meth:`compact`, :meth:`forget`)."""
        batch = self.encode(journal, offsets, sessions, popularity, live, events)
        applied = self.apply_encoded(batch)
        if applied and compact:
            self.compact(batch.compact)
            self.forget(batch.forgotten)
        return applied

    @abstractmethod
    def compact(self, logs: Iterable[str]) -> int:
        """Make these rows (as named in :attr:`StoreBatch.compact`) cheaper to read, changing
        no sum; return how many were rewritten."""

    @abstractmethod
    def forget(self, epochs: Iterable[int]) -> int:
        """Give back the memory of forgotten epochs' rows (reads ignore them already)."""

    # -- read ----------------------------------------------------------------------------------
    @abstractmethod
    def stored_offset(self, topic: str, partition: int) -> int | None:
        """The next offset of a partition to apply (None: nothing applied yet)."""

    @abstractmethod
    def session_states(self, ids: Iterable[int]) -> dict[int, tuple[bytes, bytes | None]]:
        """Stored states of these sessions with their runs logs (absent ones left out)."""

    @abstractmethod
    def sessions(self, ids: Iterable[int]) -> dict[int, bytes]:
        """Stored states of these sessions (absent ones left out)."""

    @abstractmethod
    def rows_with_offset(self, wanted: Iterable[tuple[str, int]],
                         partition: tuple[str, int] | None = None) -> tuple[Rows, int | None]:
        """Matrix rows, and with ``partition`` its stored offset read at the same moment:
        whether the rows include a batch in flight is then known."""

    def rows(self, wanted: Iterable[tuple[str, int]]) -> Rows:
        """Several matrix rows: (matrix, aid) → {neighbour: weight}."""
        return self.rows_with_offset(wanted)[0]

    def row(self, matrix: str, aid: int) -> dict[int, int]:
        return self.rows([(matrix, aid)])[(matrix, aid)]

    @property
    @abstractmethod
    def clicks_epoch(self) -> int | None:
        """The latest epoch as last read: the scale clicks rows were folded to."""

    @abstractmethod
    def popular(self, kind: int, k: int) -> list[int]:
        """The same top list as :meth:`Popularity.top` over the same events."""

    @abstractmethod
    def popularity_scores(self, kinds: Sequence[int],
                          aids: Sequence[int]) -> dict[int, list[int]]:
        """Per kind, the items' scores as :meth:`Popularity.score` gives them."""

    @abstractmethod
    def live_sessions(self, limit: int) -> list[int]:
        """Recently active sessions, most recent first."""

    @abstractmethod
    def latest_event_ts(self) -> int | None:
        """The latest event time among live sessions: the stream's "now"."""

    @abstractmethod
    def events(self) -> int:
        """Events applied by all workers together."""

    @abstractmethod
    def matrix(self, name: str) -> dict[int, dict[int, int]]:
        """A whole matrix (for dumps and tests)."""

    def export(self, k: int = 20) -> Iterator[dict[str, object]]:
        """Rows in the ``liverec covis`` format."""
        return export_rows(self.matrix("clicks"), self.matrix("carts_orders"),
                           self.matrix("buy2buy"), k)

    # -- learned models ------------------------------------------------------------------------
    @abstractmethod
    def save_model(self, name: str, snapshot: bytes) -> int:
        """Store a model's snapshot; return its version (1 for the first save, then +1)."""

    @abstractmethod
    def model_version(self, name: str) -> int:
        """The version of a model's latest snapshot (0: none saved yet)."""

    @abstractmethod
    def model(self, name: str) -> tuple[int, bytes] | None:
        """A model's latest snapshot and its version, read together (None: never saved)."""

    # -- watched sessions and their lists ------------------------------------------------------
    @abstractmethod
    def watch(self, sessions: Iterable[int], now_ms: int) -> None:
        """A web node's clients watch these sessions until ``now_ms`` + :data:`WATCH_TTL_MS`."""

    @abstractmethod
    def watched(self, sessions: Iterable[int], now_ms: int) -> list[int]:
        """Those of ``sessions`` some client watches now."""

    @abstractmethod
    def forget_lapsed_watches(self, now_ms: int) -> int:
        """Drop the watches that lapsed before ``now_ms``; return how many."""

    @abstractmethod
    def publish_lists(self, payloads: Mapping[int, bytes]) -> None:
        """Store watched sessions' lists and announce them to the web nodes."""

    @abstractmethod
    def stored_lists(self, session: int) -> tuple[bytes | None, bytes | None]:
        """A session's stored lists and state, read together (either may be absent)."""

    # -- the deployment ------------------------------------------------------------------------
    @abstractmethod
    def report(self, kind: str, name: str, body: bytes, until_ms: int) -> None:
        """A process's figures (a worker's, a replay's), shown by every web node until
        ``until_ms`` (wall clock) unless reported again; ``name`` tells reporters apart."""

    @abstractmethod
    def reports(self, kind: str, now_ms: int) -> dict[str, bytes]:
        """The reports of ``kind`` still current at ``now_ms``, by name (lapsed ones go)."""

    @abstractmethod
    def shared_secret(self, candidate: str) -> str:
        """The secret web nodes sign tokens with: ``candidate`` if none is stored yet."""

    @abstractmethod
    def clear(self) -> int:
        """Delete all of this deployment's state; return how many entries went."""
