"""Three co-visitation matrices, updated incrementally, one event at a time.

The exact definition is in ``docs/covisitation.md``; in short, for each session and each of two
*families* of events:

* ``all`` (every event; feeds the ``clicks`` and ``carts_orders`` matrices): pairs of events at
  most :attr:`CovisConfig.window` events apart, less than 24 h apart, different aids;
* ``buys`` (carts and orders only; feeds ``buy2buy``): the same over the cart/order
  subsequence, less than 14 days apart.

Each pair (i, j), i before j, is two *directed occurrences* ``a_i → a_j`` and ``a_j → a_i`` at
time ``tau = t_j``. Occurrences of one directed pair in one session form *runs*: a run lasts
the family's gap from its first occurrence; the next occurrence after that starts a new run. A
matrix cell is the sum over sessions and runs of one weight per run, so a pair counts once per
visit however often the shopper bounces between the two items (the public OTTO recipe's "once
per session"), and the sum does not depend on the order sessions interleave. The run's weight
is its **maximum** type weight (``carts_orders``) and the time weight of its **first**
occurrence (``clicks``: when the visit first put the two items together).

The parameters and the weights are in :mod:`online_models.covis_definition`. Weights are
integers so that sums are exact in any order; that is what makes the incremental
result equal to :func:`online_models.covisitation_batch.batch_covisitation` bit for bit:

* ``clicks``: ``1024 · 2^((tau − k·E) / half_life)``, forward exponential decay
  (recent pairs weigh more, nothing is ever rescanned). ``E`` is an epoch of
  ``epoch_half_lives`` half-lives and ``k`` the epoch of ``tau``. A cell is its increments
  summed per epoch, the previous epoch's sum shifted right by ``epoch_half_lives`` bits
  (renormalisation) and added to the current one's, which keeps values below 2^43. Summing
  before shifting makes the cell independent of the order the epochs' events arrive in.
* ``carts_orders``: the type of the occurrence's target event: clicks 1, carts 6, orders 3.
* ``buy2buy``: 1.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from operator import itemgetter
from typing import Final

from online_models.covis_definition import (
    DAY_MS,
    EPOCH_HALF_LIVES,
    HOUR_MS,
    TYPE_WEIGHTS,
    WEIGHT_ONE,
    CovisConfig,
    TimeWeight,
)
from online_models.rows import (
    CO_BITS,
    CO_MASK,
    MATRICES,
    CellJournal,
    add_star,
    decode,
    journal_add,
    summed,
    top_items,
    top_packed,
)
from online_models.sessions import SessionState
from online_models.types import CLICKS

__all__ = ["DAY_MS", "EPOCH_HALF_LIVES", "HOUR_MS", "TYPE_WEIGHTS", "WEIGHT_ONE", "CoVisitation",
           "CovisConfig", "TimeWeight"]

_aid_of = itemgetter(0)
_PAIR_SHIFT: Final = 64


class CoVisitation:
    """The three matrices and their incremental update.

    ``clicks`` and ``carts_orders`` come from the same occurrences, so every cell of one is a
    cell of the other: they are stored together, one packed int per cell (clicks weight << 32 |
    carts_orders weight), which halves the dictionary work on the hot path and the memory.

    >>> cv = CoVisitation()
    >>> state = SessionState.empty(cv.config.window)
    >>> for aid, ts, typ in [(1, 0, 0), (2, 1000, 0), (1, 2000, 1)]:
    ...     cv.update(state, aid, ts, typ)
    >>> cv.row("carts_orders", 2)   # 2 → 1 once (max of click 1 and cart 6)
    {1: 6}
    >>> cv.top("clicks", 1, 5)
    [(2, 1024)]
    """

    def __init__(self, config: CovisConfig | None = None, *, keep_matrices: bool = True) -> None:
        self.config = config or CovisConfig()
        self.keep_matrices = keep_matrices
        """False: increments go to the journal only (:meth:`take_journal`), the matrices here
        stay empty. For a worker whose matrices live in a shared store: its own copy grew
        with every row it touched, updating it took about a fifth of the worker's apply
        phase, and nothing read it."""
        self.pairs: dict[int, dict[int, int]] = {}
        """``all`` family rows of the current epoch: aid → {neighbour: clicks << 32 |
        carts_orders}."""
        self.buy2buy: dict[int, dict[int, int]] = {}
        """``buys`` family rows of the current epoch."""
        self.old_pairs: dict[int, dict[int, int]] = {}
        """The previous epoch's ``all`` rows, in that epoch's own scale: a row is the sum of
        both epochs' with these shifted when read (:meth:`row`); older epochs are forgotten.
        Kept unshifted so a late event of that epoch adds to the exact sum, as a store's
        per-epoch logs do (:func:`~online_models.rows.fold_epochs`)."""
        self.old_buys: dict[int, dict[int, int]] = {}
        # The landmark is the Unix epoch, so every process, batch or stream, on any partition,
        # computes the same weight for the same time without agreeing on a "first event".
        self.time_weight = TimeWeight(0, self.config.half_life_ms, self.config.epoch_half_lives)
        self.epoch = 0
        # The current epoch's time span, so the hot path needs no division to find it.
        self._half_life = self.config.half_life_ms
        self._epoch_start_ts = 0
        self._next_epoch_ts = -(2**63)
        self.pruned_rows = 0
        # Cached top lists, dropped when their row changes: one entry per aid holding the
        # clicks and carts_orders tops (same row), and one per aid for buy2buy.
        self._top_pairs: dict[int, dict[str, list[tuple[int, int]]]] = {}
        self._top_buys: dict[int, list[tuple[int, int]]] = {}
        self.journal: CellJournal | None = None
        """When set, every cell increment is also recorded there (see :meth:`take_journal`)."""
        self._journals: dict[int, CellJournal] = {}  # per clicks epoch, since the last take
        if not keep_matrices:
            self.take_journal()  # nowhere else for the increments to go

    def take_journal(self) -> list[CellJournal]:
        """Start recording increments (first call) and return those recorded since last time:
        one journal per clicks epoch they are in the scale of (almost always one).

        A journaled increment is in the scale of its occurrence's own epoch, never rescaled:
        a worker that sees one partition cross into a new epoch before another must not move
        the other's events to the new scale (a store folds per-epoch sums instead). For a
        time-ordered stream that is the scale the in-memory matrices add it in, too.
        """
        # The current epoch's journal even when empty: a store learns from it that the
        # stream has entered that epoch (and forgets older ones) as the matrices here do.
        taken = [j for j in self._journals.values() if j or j.epoch == self.epoch]
        self.journal = CellJournal(self.epoch)
        self._journals = {self.epoch: self.journal}
        return taken

    def _journal_of(self, epoch: int) -> CellJournal:
        journal = self._journals.get(epoch)
        if journal is None:
            journal = self._journals[epoch] = CellJournal(epoch)
        return journal

    # -- update ---------------------------------------------------------------------------------
    def update(self, state: SessionState, aid: int, ts: int, etype: int) -> None:
        """Extend the matrices with one event of the session whose state is ``state``."""
        if ts >= self._next_epoch_ts:  # also true for the very first event
            self._enter_epoch(ts)
        if ts > state.max_ts:
            state.max_ts = ts
        elif ts < state.max_ts:
            state.ordered = False
        recent = state.recent
        late = ts < self._epoch_start_ts
        if late:  # rare: rows and journal of the event's own epoch, or none (forgotten)
            saved = self._enter_late(ts)
        if recent:
            if not late:  # the usual case: an event of the current epoch
                w_time = round(WEIGHT_ONE * 2.0 ** ((ts - self._epoch_start_ts) / self._half_life))
            else:  # in its own epoch's scale, as its rows and journal are
                w_time = self.time_weight.weight(ts, self.time_weight.epoch(ts))
            if (etype == CLICKS and not state.window_buys and state.ordered
                    and ts - recent[0][1] < self.config.max_gap_ms):
                self._pair_clicks(state, aid, ts, w_time)
            else:
                self._pair_all(state, aid, ts, TYPE_WEIGHTS[etype], w_time)
        if len(recent) == recent.maxlen and recent[0][2] != CLICKS:
            state.window_buys -= 1  # about to fall out of the window
        recent.append((aid, ts, etype))
        if etype != CLICKS:
            state.window_buys += 1
            self._pair_buys(state, aid, ts)
            state.recent_buys.append((aid, ts))
        if late:
            self.pairs, self.buy2buy, self.journal = saved

    def _enter_late(self, ts: int) -> tuple[dict[int, dict[int, int]],
                                            dict[int, dict[int, int]], CellJournal | None]:
        """Point the update at the rows and journal of an event older than the current
        epoch: the previous epoch's, or scratch ones thrown away (an epoch before that is
        forgotten, whatever order events arrive in). The session's runs advance either way.
        Returns what to restore."""
        saved = self.pairs, self.buy2buy, self.journal
        own = self.time_weight.epoch(ts)
        if own == self.epoch - 1:
            self.pairs, self.buy2buy = self.old_pairs, self.old_buys
            if self.journal is not None:  # journaled in its own epoch's scale (take_journal)
                self.journal = self._journal_of(own)
        else:
            self.pairs, self.buy2buy = {}, {}
            if self.journal is not None:
                self.journal = CellJournal(own)
        return saved

    def observe(self, state: SessionState, aid: int, ts: int, etype: int) -> None:
        """Extend the session's history with one event and leave the matrices as they are
        (an evaluation whose models learn from the training part only)."""
        if ts > state.max_ts:
            state.max_ts = ts
        elif ts < state.max_ts:
            state.ordered = False
        recent = state.recent
        if len(recent) == recent.maxlen and recent[0][2] != CLICKS:
            state.window_buys -= 1
        recent.append((aid, ts, etype))
        if etype != CLICKS:
            state.window_buys += 1
            state.recent_buys.append((aid, ts))

    def _pair_clicks(self, state: SessionState, b: int, t: int, w_time: int) -> None:
        """:meth:`_pair_all` for the most common case, a click in an all-click window.

        Every weight is then 1 and (the session being in time order, its oldest event within
        the gap) every window event pairs with ``b``, so only *which* aids are in the window
        matters: duplicates collapse, and an open run can never grow, only be new.
        """
        gap = self.config.max_gap_ms
        runs = state.runs
        changed = state.changed_runs
        partners = dict.fromkeys(map(_aid_of, state.recent))
        partners.pop(b, None)
        fresh: list[int] = []
        for a in partners:
            key = a << 64 | b if a < b else b << 64 | a  # _PAIR_SHIFT
            run = runs.get(key)
            if run is None or t - (run >> 8) > gap:
                runs[key] = t << 8 | 0x11  # both directions weigh 1
                fresh.append(a)
                if changed is not None:
                    changed.add(key)
        if not fresh:
            return
        inc = (w_time << CO_BITS) + 1
        if self.journal is not None:
            add_star(self.journal.pairs, b, fresh, inc)
        if not self.keep_matrices:
            return
        pairs = self.pairs
        add_star(pairs, b, fresh, inc)
        top = self._top_pairs
        top.pop(b, None)
        for a in fresh:
            top.pop(a, None)
        cap = self.config.max_neighbors
        if cap:
            for x in (b, *fresh):
                if len(pairs[x]) > 3 * cap:
                    self._prune_pairs(x, cap)

    def _enter_epoch(self, ts: int) -> None:
        tw = self.time_weight
        epoch = tw.epoch(ts)
        if epoch > self.epoch:
            self._renormalise(epoch)
        self._epoch_start_ts = tw.landmark + self.epoch * tw.epoch_ms
        self._next_epoch_ts = self._epoch_start_ts + tw.epoch_ms

    def _pair_all(self, state: SessionState, b: int, t: int, wb: int, w_time: int) -> None:
        """Pair event ``b`` (type weight ``wb``) with each event of its window.

        Both directions of an occurrence share its time, so they share their runs: one run
        record per unordered pair, packed as ``start << 8 | w(lo→hi) << 4 | w(hi→lo)``. A
        repeat occurrence inside an open run costs one lookup and two comparisons.
        """
        gap = self.config.max_gap_ms
        runs = state.runs
        changed = state.changed_runs
        pairs = self.pairs
        top = self._top_pairs
        weights = TYPE_WEIGHTS
        start = w_time << 32  # CO_BITS; literals below keep the hot loop free of globals
        grown: list[int] = []
        row_b: dict[int, int] | None = None
        keep = self.keep_matrices
        journal_pairs = self.journal.pairs if self.journal is not None else {}
        # Each partner once, at its heaviest type in the window: repeats of an item (common)
        # would each cost a run lookup only to find nothing new.
        heaviest: dict[int, int] = {}
        for a, ta, type_a in state.recent:
            if a != b and -gap < t - ta < gap:
                wa = weights[type_a]
                if heaviest.get(a, 0) < wa:
                    heaviest[a] = wa
        for a, wa in heaviest.items():
            # direction b→a weighs a's type; a→b weighs b's (wb)
            if a < b:
                key, w_lohi, w_hilo = a << 64 | b, wb, wa  # _PAIR_SHIFT
            else:
                key, w_lohi, w_hilo = b << 64 | a, wa, wb
            run = runs.get(key)
            if run is None or t - (run >> 8) > gap:
                runs[key] = t << 8 | w_lohi << 4 | w_hilo
                inc_ab, inc_ba = start + wb, start + wa
                grown.append(a)
                if changed is not None:
                    changed.add(key)
            else:
                old_lohi, old_hilo = (run >> 4) & 15, run & 15
                if w_lohi <= old_lohi and w_hilo <= old_hilo:
                    continue  # the usual case: nothing new in this run
                new_lohi = w_lohi if w_lohi > old_lohi else old_lohi
                new_hilo = w_hilo if w_hilo > old_hilo else old_hilo
                runs[key] = (run >> 8) << 8 | new_lohi << 4 | new_hilo
                if changed is not None:
                    changed.add(key)
                if a < b:
                    inc_ab, inc_ba = new_lohi - old_lohi, new_hilo - old_hilo
                else:
                    inc_ab, inc_ba = new_hilo - old_hilo, new_lohi - old_lohi
            if not keep:  # a worker's case: journal_add inlined, b's row fetched once
                if inc_ab:
                    row_a = journal_pairs.get(a)
                    if row_a is None:
                        row_a = journal_pairs[a] = {}
                    row_a[b] = row_a.get(b, 0) + inc_ab
                if inc_ba:
                    if row_b is None:
                        row_b = journal_pairs.get(b)
                        if row_b is None:
                            row_b = journal_pairs[b] = {}
                    row_b[a] = row_b.get(a, 0) + inc_ba
                continue
            if row_b is None:
                row_b = pairs.get(b)
                if row_b is None:
                    row_b = pairs[b] = {}
                top.pop(b, None)
            row_a = pairs.get(a)
            if row_a is None:
                row_a = pairs[a] = {}
            # .get: pruning may have dropped a cell whose run is still open
            if inc_ab:
                row_a[b] = row_a.get(b, 0) + inc_ab
                if self.journal is not None:
                    journal_add(self.journal.pairs, a, b, inc_ab)
            if inc_ba:
                row_b[a] = row_b.get(a, 0) + inc_ba
                if self.journal is not None:
                    journal_add(self.journal.pairs, b, a, inc_ba)
            top.pop(a, None)
        cap = self.config.max_neighbors
        if cap and grown and keep:
            limit = 3 * cap
            for x in (b, *grown):
                if len(pairs[x]) > limit:
                    self._prune_pairs(x, cap)

    def _pair_buys(self, state: SessionState, b: int, t: int) -> None:
        gap = self.config.buy_max_gap_ms
        partners = {a for a, ta in state.recent_buys if a != b and -gap < t - ta < gap}
        if not partners:
            return
        runs = state.buy_runs  # unordered pair → run start
        grown: list[int] = []
        for a in partners:
            key = a << _PAIR_SHIFT | b if a < b else b << _PAIR_SHIFT | a
            began = runs.get(key)
            if began is not None and t - began <= gap:
                continue  # same run: the weight is 1 either way
            runs[key] = t
            if state.changed_buy_runs is not None:
                state.changed_buy_runs.add(key)
            grown.append(a)
        if not grown:
            return
        if self.journal is not None:
            add_star(self.journal.buys, b, grown, 1)
        if not self.keep_matrices:
            return
        buy2buy = self.buy2buy
        add_star(buy2buy, b, grown, 1)
        top = self._top_buys
        top.pop(b, None)
        for a in grown:
            top.pop(a, None)
        cap = self.config.max_neighbors
        if cap:
            for x in (b, *grown):  # only rows that grew can have passed the bound
                if len(buy2buy[x]) > 3 * cap:
                    buy2buy[x] = dict(top_items(buy2buy[x], cap))
                    self.pruned_rows += 1

    def _prune_pairs(self, x: int, cap: int) -> None:
        """Keep the entries in the top ``cap`` of either packed matrix.

        Selection without tie-breaks, in C (``nlargest`` with a bound-method key): pruning runs
        often on busy rows, and an entry tied at the boundary is a coin toss either way.
        """
        row = self.pairs[x]
        keep = set(heapq.nlargest(cap, row, key=row.__getitem__))  # by clicks (high bits)
        co = {b: v & CO_MASK for b, v in row.items()}
        keep.update(heapq.nlargest(cap, co, key=co.__getitem__))
        self.pairs[x] = {b: row[b] for b in keep}
        self.pruned_rows += 1

    def _renormalise(self, epoch: int) -> None:
        """Enter a later epoch: the current epoch's rows become the previous epoch's (shifted
        to the new scale when read); the previous epoch's are forgotten (all of them after a
        jump of two epochs or more)."""
        if self.journal is not None:
            # A shift is not an increment: later increments go to a journal of the new epoch,
            # and the store folds its per-epoch sums the same way (fold_epochs).
            self.journal = self._journal_of(epoch)
        if epoch == self.epoch + 1:
            self.old_pairs, self.old_buys = self.pairs, self.buy2buy
        else:
            self.old_pairs, self.old_buys = {}, {}
        self.pairs, self.buy2buy = {}, {}
        self.epoch = epoch
        self._top_pairs.clear()
        self._top_buys.clear()

    # -- read -----------------------------------------------------------------------------------
    def _row_of(self, matrix: str, aid: int) -> dict[int, int]:
        """A row as stored (packed for the ``all`` family), both epochs' summed; not to be
        changed by the caller."""
        if matrix == "buy2buy":
            return summed(self.old_buys.get(aid), self.buy2buy.get(aid))
        if matrix not in MATRICES:
            raise KeyError(f"unknown matrix {matrix!r}; expected one of {MATRICES}")
        return summed(self.old_pairs.get(aid), self.pairs.get(aid), self.time_weight.shift)

    def row(self, matrix: str, aid: int) -> dict[int, int]:
        """One row of a matrix as a new ``{neighbour: weight}`` dict."""
        row = self._row_of(matrix, aid)
        return dict(row) if matrix == "buy2buy" else decode(row, matrix == "clicks")

    def top(self, matrix: str, aid: int, k: int = 20) -> list[tuple[int, int]]:
        """The ``k`` heaviest neighbours of ``aid``: weight descending, then aid ascending."""
        # A cached list shorter than ``k`` is whole unless the row has more entries (it was
        # computed for a smaller k): rows under k entries, common for new items, were
        # recomputed on every call before.
        if matrix == "buy2buy":
            cached = self._top_buys.get(aid)
            if cached is None or len(cached) < k:
                row = self._row_of(matrix, aid)
                if cached is None or len(cached) < len(row):
                    cached = self._top_buys[aid] = top_items(row, k)
            return cached[:k]
        entry = self._top_pairs.get(aid)
        if entry is None:
            entry = self._top_pairs[aid] = {}
        cached = entry.get(matrix)
        if cached is None or len(cached) < k:
            row = self._row_of(matrix, aid)
            if cached is None or len(cached) < len(row):
                cached = entry[matrix] = top_packed(row, k, matrix == "clicks")
        return cached[:k]

    def matrix(self, name: str) -> dict[int, dict[int, int]]:
        """A whole matrix, decoded (for export and tests; not for the hot path)."""
        rows, old = (self.buy2buy, self.old_buys) if name == "buy2buy" else (self.pairs,
                                                                              self.old_pairs)
        if name not in MATRICES:
            raise KeyError(f"unknown matrix {name!r}; expected one of {MATRICES}")
        decoded = {x: self.row(name, x) for x in rows.keys() | old.keys()}
        return {x: row for x, row in decoded.items() if row}

    def export(self, k: int = 20) -> Iterator[dict[str, object]]:
        """Rows in the ``liverec covis`` format, one per aid ascending (as
        :func:`~online_models.rows.export_rows` writes them), ranked straight from the packed
        rows: decoding whole matrices first held three more copies of them at the peak."""
        shift = self.time_weight.shift
        aids = sorted({aid for rows in (self.pairs, self.old_pairs, self.buy2buy,
                                        self.old_buys) for aid, row in rows.items() if row})
        for aid in aids:
            now, before = self.pairs.get(aid), self.old_pairs.get(aid)
            if now:
                packed, scale = summed(before, now, shift), 0
            else:  # the previous epoch's row alone (most of them, early in an epoch): ranked
                packed, scale = before or {}, shift  # in the new scale without a copy
            buys = summed(self.old_buys.get(aid), self.buy2buy.get(aid))
            yield {"aid": aid,
                   "clicks": [[b, w] for b, w in top_packed(packed, k, True, scale)],
                   "carts_orders": [[b, w] for b, w in top_packed(packed, k, False)],
                   "buy2buy": [[b, w] for b, w in top_items(buys, k)]}

    def cell_count(self) -> int:
        """Stored cells (a packed clicks/carts_orders cell counts once)."""
        return sum(len(r) for m in (self.pairs, self.buy2buy, self.old_pairs, self.old_buys)
                   for r in m.values())
