"""Lists and learned models from the shared store: what workers push and stateless web nodes
serve.

The same code as the embedded pipeline (:func:`stream.pipeline.session_lists`), reading
co-visitation rows and popularity from Redis instead of memory. Over the same events the recipe
gives the same lists: rows are the same integer sums and popularity the same integer counts,
ranked by the same rules (see ``docs/production.md``).

A :class:`StoreView` serves one round (the watched sessions a batch touched, one request, or
the candidates a worker's re-rankers learn from in one batch): it fetches every row the round
needs in one round trip and each popularity list once. :class:`SharedModels` keeps a process's
re-rankers in step with the snapshots saved in the store.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, KeysView, Mapping, Sequence
from typing import Generic, TypeVar

from distributed.store_api import SharedStore
from online_models.candidates import candidate_rows
from online_models.recommend import rows_needed, shelf
from online_models.rerank import RerankConfig, Reranker
from online_models.rows import MATRICES, CellJournal, raised_top, top_items
from online_models.sessions import SessionState
from online_models.types import CARTS, CLICKS, ORDERS
from stream.pipeline import Features, Recommendations, session_lists

K = TypeVar("K")
V = TypeVar("V")

#: The popularity kinds the re-rankers' features read item by item.
_SCORED_KINDS = (CLICKS, CARTS, ORDERS)


class AgedCache(Generic[K, V]):
    """Values read from the store, each kept for ``max_age_s`` after its read and at most
    ``size`` of them (the least recently read go first): the one mechanism behind the
    feature and row caches."""

    def __init__(self, max_age_s: float, size: int) -> None:
        self.max_age_s = max_age_s
        self.size = size
        self._entries: dict[K, tuple[float, V]] = {}

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def keys(self) -> KeysView[K]:
        """The keys held, however old (a set-like view)."""
        return self._entries.keys()

    def get(self, key: K, now: float) -> V | None:
        """The value if read less than ``max_age_s`` before ``now``."""
        cached = self._entries.get(key)
        return cached[1] if cached is not None and now - cached[0] < self.max_age_s else None

    def peek(self, key: K) -> V | None:
        """The value however old (to update it in place)."""
        cached = self._entries.get(key)
        return None if cached is None else cached[1]

    def put(self, key: K, value: V, now: float) -> None:
        self._entries.pop(key, None)  # re-insert: the dict's order is the read order
        self._entries[key] = (now, value)
        if len(self._entries) > self.size:
            del self._entries[next(iter(self._entries))]

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)


class FeatureCache:
    """Rows' top entries and items' popularity scores read from the store, reused for up to
    ``max_age_s``: a worker's re-rankers learn from features at most that old instead of
    reading the rows of every judged session's items in every batch (popular items' rows
    come back batch after batch)."""

    def __init__(self, max_age_s: float = 1.0, size: int = 200_000) -> None:
        self.tops: AgedCache[tuple[str, int], list[tuple[int, int]]] = AgedCache(max_age_s,
                                                                                  size)
        self.scores: AgedCache[int, dict[int, int]] = AgedCache(max_age_s, size)
        """aid → {kind: score}."""

    @property
    def max_age_s(self) -> float:
        return self.tops.max_age_s

    @max_age_s.setter
    def max_age_s(self, value: float) -> None:
        self.tops.max_age_s = self.scores.max_age_s = value


class HeldRow:
    """A row a :class:`RowCache` holds, and its top lists."""

    __slots__ = ("epoch", "row", "tops", "seen")

    def __init__(self, epoch: int | None, row: dict[int, int], seen: int = 0) -> None:
        self.epoch = epoch
        """The latest epoch when the row was read: a clicks row is folded to its scale, and
        every row is the sum of it and the one before."""
        self.row = row
        self.seen = seen
        """The last of the process's batches that the row as read already holds (0: none
        past those whose journals were added before it was read)."""
        self.tops: dict[int, list[tuple[int, int]]] = {}
        """k → :func:`top_items` of the row, kept up with it."""


class RowCache:
    """Whole rows read from the store, kept current with this process's own increments.

    A worker stores a batch, then computes its watched sessions' lists from rows that this
    very batch changed: reading them all again costs more than the rest of a small batch.
    Instead, rows once read stay here and the worker adds each stored batch's journal to them
    (:meth:`add`), so with one worker they are exactly what Redis holds. Increments of other
    workers show once a row is older than ``max_age_s`` and read again. A row is read over
    the store's latest two epochs: an increment in another epoch, or a newer epoch in Redis,
    drops it (its clicks are in another scale, and an epoch may be forgotten).

    A read while a batch's script is on its way (:meth:`sent`) may or may not include that
    batch: it then reads the batch's stored offset in the same transaction, and a row that
    holds the batch already is left alone when the batch's journal is added (it would count
    the batch twice).
    """

    def __init__(self, max_age_s: float = 1.0, size: int = 100_000) -> None:
        # One cache per matrix, keyed by aid, so that a batch's journal finds the rows held
        # by intersecting key sets (in C) rather than looking up each of its rows: a batch
        # of the push benchmark's events touches about 1,300 rows, of which a few are held.
        self._rows: dict[str, AgedCache[int, HeldRow]] = {
            matrix: AgedCache(max_age_s, size) for matrix in MATRICES}
        self.hits = 0
        self.reads = 0
        self.batches_sent = 0
        self.unsettled: tuple[int, str, int, int] | None = None
        """The batch sent and not yet added: (number, topic, partition, offset past its end
        in that partition)."""

    def sent(self, topic: str, partition: int, end: int) -> int:
        """A batch is on its way to the store: one of the partitions it covers, and the
        offset its script stores there. Returns the batch's number (rising from 1), for
        :meth:`add`."""
        self.batches_sent += 1
        self.unsettled = (self.batches_sent, topic, partition, end)
        return self.batches_sent

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """The (matrix, aid) rows held, however old."""
        return ((matrix, aid) for matrix, rows in self._rows.items() for aid in rows)

    def get(self, key: tuple[str, int], now: float,
            clicks_epoch: int | None) -> dict[int, int] | None:
        matrix, aid = key
        held = self._rows[matrix].get(aid, now)
        if held is None or held.epoch != clicks_epoch:
            return None
        self.hits += 1
        return held.row

    def put(self, key: tuple[str, int], row: dict[int, int], now: float,
            clicks_epoch: int | None, seen: int = 0) -> dict[int, int]:
        """Hold a copy of ``row``, read now (holding batch ``seen`` already, if not 0);
        return the copy (the one :meth:`top` keeps a top list with)."""
        self.reads += 1
        matrix, aid = key
        held = HeldRow(clicks_epoch, dict(row), seen)
        self._rows[matrix].put(aid, held, now)
        return held.row

    def top(self, key: tuple[str, int], row: dict[int, int], k: int) -> list[tuple[int, int]]:
        """:func:`top_items` of ``row``, kept with it when it is the row held for ``key``
        (which :meth:`get` returned): ranking long rows again every round was half of a
        round's time on a shop's mix of items, whose popular rows come back round after
        round. Kept exact as batches add to the row (:meth:`add`)."""
        matrix, aid = key
        held = self._rows[matrix].peek(aid)
        if held is None or held.row is not row:
            return top_items(row, k)
        top = held.tops.get(k)
        if top is None:
            top = held.tops[k] = top_items(row, k)
        return top

    def add(self, journals: Iterable[CellJournal], now: float | None = None,
            batch: int = 0) -> None:
        """Batch number ``batch`` this process stored (0: unnumbered, never :meth:`sent`):
        add its increments to the rows held (only those rows are decoded: the cache holds
        the watched sessions' few), except to rows read with it already in. A row past its
        age is dropped instead: the next read replaces it anyway, and a session that stopped
        reading rows (20 distinct items and more: the recipe ranks its own history) would
        otherwise keep its rows up until the cache is full."""
        now = time.monotonic() if now is None else now
        if self.unsettled is not None and self.unsettled[0] <= batch:
            self.unsettled = None
        for journal in journals:
            for matrix in MATRICES:
                rows = self._rows[matrix]
                for aid in journal.rows(matrix).keys() & rows.keys():
                    held = rows.get(aid, now)
                    if held is None:
                        rows.drop(aid)
                        continue
                    if batch and held.seen >= batch:
                        continue  # read after this batch's script ran: it is in already
                    if held.epoch != journal.epoch:
                        rows.drop(aid)  # another scale, or an epoch forgotten: not a sum
                        continue
                    row, tops = held.row, held.tops
                    for b, inc in journal.row(matrix, aid).items():
                        weight = row[b] = row.get(b, 0) + inc
                        for k, top in tops.items():  # increments are positive: weights rise
                            tops[k] = raised_top(top, k, b, weight)


class StoreView:
    """Rows and popularity read from the store once per round (a snapshot), or, with a
    :class:`FeatureCache`, reused from earlier rounds while fresh enough."""

    def __init__(self, store: SharedStore, cache: FeatureCache | None = None,
                 rows: RowCache | None = None) -> None:
        self.store = store
        self.cache = cache
        self.row_cache = rows
        self._now = time.monotonic()
        self._rows: dict[tuple[str, int], dict[int, int]] = {}
        self._tops: dict[tuple[str, int, int], list[tuple[int, int]]] = {}
        self._popular: dict[int, list[int]] = {}
        self._scores: dict[int, dict[int, int]] = {kind: {} for kind in _SCORED_KINDS}
        self.misses = 0
        """Rows and scores read one at a time because no prefetch asked for them."""

    def prefetch(self, states: Iterable[SessionState], k: int = 20) -> None:
        """Fetch the rows the recipe will read for these sessions, in one round trip."""
        self._fetch_rows(row for state in states for row in rows_needed(state.recent, k))

    def prefetch_candidates(self, histories: Iterable[Sequence[tuple[int, int, int]]],
                            config: RerankConfig, k: int = 20) -> None:
        """Fetch what :func:`~online_models.rerank.build_candidates` reads for these
        histories."""
        histories = [list(h) for h in histories]
        self.prefetch_rows([row for events in histories for row in candidate_rows(events, config)],
                           {aid for events in histories for aid, _, _ in events},
                           config.neighbours, k)

    def prefetch_rows(self, rows: Sequence[tuple[str, int]], own: Iterable[int],
                      neighbours: int, k: int = 20) -> None:
        """Fetch these rows, then the popularity scores of every item they (their top
        ``neighbours``), the popular lists and ``own`` can make a candidate: two round trips."""
        self._fetch_rows(rows, neighbours)
        pool = set(own)
        for etype in (CLICKS, CARTS, ORDERS):
            pool.update(self.popular(etype, k))
        for matrix, aid in rows:
            pool.update(b for b, _ in self.top(matrix, aid, neighbours))
        self._fetch_scores(pool)

    def _fetch_rows(self, rows: Iterable[tuple[str, int]], neighbours: int = 0) -> None:
        cache, now, row_cache = self.cache, self._now, self.row_cache
        epoch = self.store.clicks_epoch
        wanted = []
        for row in dict.fromkeys(rows):
            if row in self._rows or (row[0], row[1], neighbours) in self._tops:
                continue
            if cache is not None and (top := cache.tops.get(row, now)) is not None:
                self._tops[(row[0], row[1], neighbours)] = top
                continue
            if row_cache is not None and (held := row_cache.get(row, now, epoch)) is not None:
                self._rows[row] = held
                continue
            wanted.append(row)
        if not wanted:
            return
        unsettled = row_cache.unsettled if row_cache is not None else None
        if unsettled is None:
            fetched, seen = self.store.rows(wanted), 0
        else:
            batch, topic, partition, end = unsettled
            fetched, offset = self.store.rows_with_offset(wanted, (topic, partition))
            seen = batch if offset is not None and offset >= end else 0
        self._rows.update(fetched)
        if row_cache is not None:
            epoch = self.store.clicks_epoch
            for key, values in fetched.items():
                self._rows[key] = row_cache.put(key, values, now, epoch, seen)
        if cache is not None and neighbours:
            for (matrix, aid), values in fetched.items():
                top = self._tops[(matrix, aid, neighbours)] = top_items(values, neighbours)
                cache.tops.put((matrix, aid), top, now)

    def _fetch_scores(self, aids: Iterable[int]) -> None:
        cache, now, known = self.cache, self._now, self._scores[CLICKS]
        missing = []
        for aid in dict.fromkeys(aids):
            if aid in known:
                continue
            if cache is not None and (scores := cache.scores.get(aid, now)) is not None:
                for kind, value in scores.items():
                    self._scores[kind][aid] = value
                continue
            missing.append(aid)
        if not missing:
            return
        read = self.store.popularity_scores(_SCORED_KINDS, missing)
        for kind, values in read.items():
            self._scores[kind].update(zip(missing, values, strict=True))
        if cache is not None:
            for i, aid in enumerate(missing):
                cache.scores.put(aid, {kind: read[kind][i] for kind in _SCORED_KINDS}, now)

    # Neighbours
    def top(self, matrix: str, aid: int, k: int = 20) -> list[tuple[int, int]]:
        cached = self._tops.get((matrix, aid, k))
        if cached is not None:
            return cached
        row = self._rows.get((matrix, aid))
        if row is None:
            self.misses += 1
            row = self._rows[(matrix, aid)] = self.store.row(matrix, aid)
        top = self._tops[(matrix, aid, k)] = (
            top_items(row, k) if self.row_cache is None
            else self.row_cache.top((matrix, aid), row, k))
        return top

    def popular(self, etype: int, k: int) -> list[int]:
        cached = self._popular.get(etype)
        if cached is None or len(cached) < k:
            cached = self._popular[etype] = self.store.popular(etype, max(k, 40))
        return cached[:k]

    def score(self, etype: int, aid: int) -> int:
        scores = self._scores.get(etype)
        if scores is None:  # a kind the features do not read item by item
            self.misses += 1
            return self.store.popularity_scores((etype,), [aid])[etype][0]
        value = scores.get(aid)
        if value is None:
            self.misses += 1
            self._fetch_scores([aid])
            value = scores[aid]
        return value


class _PopularView:
    """The view's popularity under the names the recipe and the re-rankers call."""

    def __init__(self, view: StoreView) -> None:
        self.view = view

    def top(self, etype: int, k: int = 20) -> list[int]:
        return self.view.popular(etype, k)

    def score(self, etype: int, aid: int) -> int:
        return self.view.score(etype, aid)


def store_shelf(store: SharedStore, k: int) -> list[int]:
    """The storefront's items (:func:`~online_models.recommend.shelf`) from the store."""
    return shelf(_PopularView(StoreView(store)), k)


def store_features(store: SharedStore, rows: Sequence[tuple[str, int]], own: Iterable[int],
                   config: RerankConfig, k: int = 20,
                   cache: FeatureCache | None = None) -> Features:
    """The shared matrices and popularity, prefetched for these rows and candidates (see
    :meth:`StoreView.prefetch_rows`): what a worker's re-rankers learn from in one batch."""
    view = StoreView(store, cache)
    view.prefetch_rows(rows, own, config.neighbours, k)
    return Features(view, _PopularView(view))


def lists_from_store(store: SharedStore, states: Mapping[int, SessionState | None],
                     k: int = 20, reranker: Reranker | None = None,
                     rows: RowCache | None = None,
                     lifetime_ms: int | None = None) -> dict[int, Recommendations]:
    """Lists of several sessions whose states the caller holds (a worker: its own); ``rows``:
    a worker's cache of rows kept current with its own batches. ``lifetime_ms``: sessions
    idle that long before the latest event stored are served as new ones
    (:func:`~stream.pipeline.session_lists`)."""
    if lifetime_ms is not None and any(s is not None for s in states.values()):
        latest = store.latest_event_ts()
        if latest is not None:
            states = {session: None if state is not None
                      and state.max_ts < latest - lifetime_ms else state
                      for session, state in states.items()}
    view = StoreView(store, rows=rows)
    present = [s for s in states.values() if s is not None]
    if reranker is None:
        view.prefetch(present, k)
    else:
        view.prefetch_candidates((s.recent for s in present if s.recent), reranker.config, k)
    popularity = _PopularView(view)
    return {session: session_lists(session, state, view, popularity, k, reranker)
            for session, state in states.items()}


def load_states(store: SharedStore, sessions: Iterable[int],
                window: int) -> dict[int, SessionState | None]:
    """Sessions' states as stored (None for one never seen or expired)."""
    sessions = list(sessions)
    blobs = store.sessions(sessions)
    return {s: SessionState.from_bytes(blobs[s], window) if s in blobs else None
            for s in sessions}


def distributed_rerank(config: RerankConfig) -> RerankConfig:
    """The re-rankers as the distributed runtime runs them: without successors and similar
    sessions (they are not in the store) and swapping snapshots only when
    :class:`SharedModels` saves one."""
    return dataclasses.replace(config, successor_items=0, similar_sessions=0, snapshot_every=0)


class SharedModels:
    """Keeps a process's re-rankers in step with the snapshots in the store.

    A worker learns and, every ``interval_s``, mixes in the newest snapshot another worker
    saved (if any), swaps its models in for serving and saves them (:meth:`save_due`). Every
    process serves the newest saved snapshot, checked at most once per ``check_s``
    (:meth:`refresh`), so all nodes serve the same model within about a second of a save.
    """

    NAME = "rerank"

    def __init__(self, store: SharedStore, reranker: Reranker, *, interval_s: float = 5.0,
                 check_s: float = 1.0) -> None:
        self.store = store
        self.reranker = reranker
        self.interval_s = interval_s
        self.check_s = check_s
        self.version = 0
        """The version of the snapshot this process serves (0: none from the store)."""
        self._learned = 0  # the newest saved version this process's learning has taken in
        self.saves = 0
        self.loads = 0
        self.started = False
        self._saved_at = time.monotonic()
        self._checked_at = float("-inf")

    def start(self) -> None:
        """Serve and learn on from the newest saved snapshot (a restart continues from it)."""
        self.started = True
        stored = self.store.model(self.NAME)
        if stored is not None:
            self.version, snapshot = stored
            self._learned = self.version
            self.reranker.load_snapshot(snapshot, learning=True)
            self.loads += 1
        self._checked_at = time.monotonic()

    def refresh(self) -> bool:
        """Swap in a newer saved snapshot for serving; True if one was."""
        now = time.monotonic()
        if now - self._checked_at < self.check_s:
            return False
        self._checked_at = now
        if self.store.model_version(self.NAME) <= self.version:
            return False
        stored = self.store.model(self.NAME)
        if stored is None:
            return False
        self.version, snapshot = stored
        self.reranker.load_snapshot(snapshot)
        self.loads += 1
        return True

    def save_due(self) -> bool:
        """Every ``interval_s``: mix in the newest other snapshot, swap, save; True if saved."""
        now = time.monotonic()
        if now - self._saved_at < self.interval_s:
            return False
        self._saved_at = now
        stored = self.store.model(self.NAME)
        if stored is not None and stored[0] > self._learned:
            self.reranker.mix(stored[1])
        self.reranker.swap()
        self.version = self._learned = self.store.save_model(self.NAME,
                                                             self.reranker.snapshot_bytes())
        self.saves += 1
        self._checked_at = now
        return True
