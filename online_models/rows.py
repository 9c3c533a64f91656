"""Matrix rows as the algorithms share them: packing, top-k, export, and batch journals.

``clicks`` and ``carts_orders`` come from the same occurrences, so the live matrices store them
in one packed int per cell (clicks weight << :data:`CO_BITS` | carts_orders weight). Everything
here reads or moves such rows without knowing how they were computed: the incremental
matrices (:mod:`online_models.covisitation`), the shared store
(:mod:`distributed.store`) and the ``covis`` output all use it.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Final

import numpy as np

#: Matrix names, in the order of ``liverec covis`` output.
MATRICES: Final = ("clicks", "carts_orders", "buy2buy")
#: Packed cell of the ``all`` family: clicks weight in the high bits, carts_orders in the low 32.
CO_BITS: Final = 32
CO_MASK: Final = (1 << CO_BITS) - 1
_AID, _WEIGHT = itemgetter(0), itemgetter(1)
#: Rows longer than this are ranked in numpy.
_ARRAY_ROWS: Final = 512


class CellJournal:
    """The cell increments of one batch, for a store that sums them elsewhere.

    Every cell is a sum of integer run weights, so increments from different workers commute:
    a shared store (Redis row logs, summed when read) ends with the same matrices whatever
    order the workers' batches arrive in. ``pairs`` is packed like the live matrices' rows;
    its clicks weights are in the scale of clicks epoch ``epoch``. A store keeps clicks sums
    per epoch and folds them when read (:func:`fold_epochs`), which is exactly what
    renormalisation does in memory.
    """

    __slots__ = ("pairs", "buys", "epoch")

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = epoch
        self.pairs: dict[int, dict[int, int]] = {}
        self.buys: dict[int, dict[int, int]] = {}

    def __bool__(self) -> bool:
        return bool(self.pairs or self.buys)

    def matrix(self, name: str) -> dict[int, dict[int, int]]:
        """One matrix's increments, decoded (``clicks``, ``carts_orders`` or ``buy2buy``)."""
        return matrix_of(self.pairs, self.buys, name)

    def rows(self, name: str) -> dict[int, dict[int, int]]:
        """One matrix's rows as stored, packed for the ``all`` family (:meth:`row` decodes
        one): for a reader that wants a few rows, not the whole matrix decoded."""
        if name not in MATRICES:
            raise KeyError(f"unknown matrix {name!r}; expected one of {MATRICES}")
        return self.buys if name == "buy2buy" else self.pairs

    def row(self, name: str, aid: int) -> dict[int, int]:
        """One row's increments, decoded."""
        row = self.rows(name).get(aid, {})
        return dict(row) if name == "buy2buy" else decode(row, name == "clicks")


def fold_epochs(rows: dict[int, dict[int, int]], shift: int) -> dict[int, int]:
    """One clicks row from its per-epoch sums: oldest first, shift right ``shift`` bits per
    epoch crossed, add the next. The same floors, in the same places, as the in-memory
    matrices, which keep the previous epoch's sums unshifted too (:func:`summed`).

    >>> fold_epochs({3: {7: 5 << 32, 8: 1}, 4: {7: 2}}, 32)
    {7: 7, 8: 0}
    """
    out: dict[int, int] = {}
    previous: int | None = None
    for epoch in sorted(rows):
        if previous is not None:
            bits = shift * (epoch - previous)
            out = {b: v >> bits for b, v in out.items()}
        for b, v in rows[epoch].items():
            out[b] = out.get(b, 0) + v
        previous = epoch
    return out


def journal_add(table: dict[int, dict[int, int]], x: int, y: int, inc: int) -> None:
    row = table.get(x)
    if row is None:
        row = table[x] = {}
    row[y] = row.get(y, 0) + inc


def summed(before: dict[int, int] | None, now: dict[int, int] | None,
           shift: int = 0) -> dict[int, int]:
    """Two epochs' row as one: their sum per neighbour, the older row's packed clicks weights
    first shifted right ``shift`` bits into the newer scale (0: counts, nothing to shift). Not
    to be changed by the caller: when one row is all there is and needs no shift, it is
    returned itself (no copy on the read path).

    >>> summed({1: 2, 3: 1}, {1: 5})
    {1: 7, 3: 1}
    >>> summed({1: 3 << CO_BITS | 6}, {1: 1 << CO_BITS | 1}, 1) == {1: 2 << CO_BITS | 7}
    True
    """
    if not before:
        return now or {}
    if shift:
        before = {b: (v >> CO_BITS >> shift) << CO_BITS | (v & CO_MASK)
                  for b, v in before.items()}
    if not now:
        return before
    out = dict(before)
    for b, v in now.items():
        out[b] = out.get(b, 0) + v
    return out


def add_star(table: dict[int, dict[int, int]], b: int, partners: Iterable[int],
             inc: int) -> None:
    """Add ``inc`` to cells (a, b) and (b, a) for each ``a`` in ``partners``: one event's
    new pairs, whose two directions weigh the same (a matrix's rows or a journal's)."""
    row_b = table.get(b)
    if row_b is None:
        row_b = table[b] = {}
    for a in partners:
        row_a = table.get(a)
        if row_a is None:
            row_a = table[a] = {}
        row_a[b] = row_a.get(b, 0) + inc
        row_b[a] = row_b.get(a, 0) + inc


def matrix_of(pairs: dict[int, dict[int, int]], buys: dict[int, dict[int, int]],
            name: str) -> dict[int, dict[int, int]]:
    """One matrix out of packed ``all``-family rows and buy2buy rows, as new dicts."""
    if name == "buy2buy":
        return {x: dict(row) for x, row in buys.items() if row}
    if name not in MATRICES:
        raise KeyError(f"unknown matrix {name!r}; expected one of {MATRICES}")
    clicks = name == "clicks"
    decoded = ((x, decode(row, clicks)) for x, row in pairs.items())
    return {x: row for x, row in decoded if row}


def decode(row: dict[int, int], clicks: bool) -> dict[int, int]:
    """One half of a packed row. A clicks weight of 0 is no cell: the cell holds carts_orders
    increments only (its run began in a forgotten epoch), or renormalising floored it."""
    if clicks:
        return {b: v >> CO_BITS for b, v in row.items() if v >> CO_BITS}
    return {b: v & CO_MASK for b, v in row.items()}


def _ranked(items: list[tuple[int, int]]) -> None:
    """Sort (aid, weight) entries into :func:`_rank`'s order in place: two stable sorts with
    C keys (aid, then weight descending) cost half of one keyed by a Python function."""
    items.sort(key=_AID)
    items.sort(key=_WEIGHT, reverse=True)


def _rank(entry: tuple[int, int]) -> tuple[int, int]:
    """The order of top lists: weight descending, then aid ascending."""
    return -entry[1], entry[0]


def top_packed(row: dict[int, int], k: int, clicks: bool, shift: int = 0
               ) -> list[tuple[int, int]]:
    """:func:`top_items` of one half of a packed row, without decoding the whole row first;
    ``shift``: of the row with its clicks weights shifted right that many bits first (an older
    epoch's row, in the newer scale, as :func:`summed` makes it), without making it.

    This runs for every history item of every list a client sees, right after the event that
    changed the row: it is the serving path's hot spot.
    """
    if clicks:
        bits = CO_BITS + shift
        if len(row) > k:
            # Packed values order by clicks first, so the k-th largest packed value bounds the
            # k-th largest clicks weight from above; keep everything with that clicks weight.
            floor = max(heapq.nlargest(k, row.values())[-1] >> bits, 1) << bits
            items = [(b, v >> bits) for b, v in row.items() if v >= floor]
        else:  # a clicks weight of 0 is no cell (decode)
            items = [(b, v >> bits) for b, v in row.items() if v >> bits]
    else:
        mask = CO_MASK
        n = len(row)
        if n > _ARRAY_ROWS and n > k:
            # A long row (an export's, a popular item's): select in numpy, since a carts_orders
            # weight always fits 32 bits; a third of ``liverec covis``'s export time before.
            weights = np.fromiter(map(mask.__and__, row.values()), np.int64, n)
            threshold = np.partition(weights, n - k)[n - k]
            keys = list(row)
            items = [(keys[i], int(weights[i])) for i in np.flatnonzero(weights >= threshold)]
        elif n > k:
            threshold = heapq.nlargest(k, map(mask.__and__, row.values()))[-1]
            items = [(b, v & mask) for b, v in row.items() if v & mask >= threshold]
        else:
            items = [(b, v & mask) for b, v in row.items()]
    _ranked(items)
    return items[:k]


def top_items(row: dict[int, int], k: int) -> list[tuple[int, int]]:
    """``k`` heaviest (aid, weight), weight descending then aid ascending.

    ``heapq.nlargest`` over the bare weights runs in C; only entries at or above the k-th
    weight are then sorted with the tie-break, which is far cheaper than a keyed sort.
    """
    if len(row) > k:
        threshold = heapq.nlargest(k, row.values())[-1]
        items = [(b, w) for b, w in row.items() if w >= threshold]
    else:
        items = list(row.items())
    _ranked(items)
    return items[:k]


def raised_top(top: list[tuple[int, int]], k: int, b: int, weight: int
               ) -> list[tuple[int, int]]:
    """:func:`top_items` of a row after ``b``'s weight rose to ``weight`` (``b`` may be new),
    from ``top``, :func:`top_items` of the row before, without reading the row: every other
    weight is unchanged, so only ``b`` can move, or enter in place of the last. A new list;
    ``top`` is left as it was (others may hold it).

    >>> raised_top([(7, 9), (8, 5)], 2, 9, 6)
    [(7, 9), (9, 6)]
    """
    if len(top) >= k:
        last, least = top[-1]
        if weight < least or (weight == least and b > last):
            # After the last: not entering, and not listed either (a listed b whose weight
            # rose ranks at least where it was). Most of a full row's increments end here.
            return top
    listed = [entry for entry in top if entry[0] != b]
    # The others are still in order: b goes in its place, no sort (on short rows nearly
    # every increment enters, since a fresh item's clicks outweigh older ones).
    bisect.insort(listed, (b, weight), key=_rank)
    return listed[:k]


def top_k(row: dict[int, int], k: int) -> list[list[int]]:
    """``k`` heaviest entries as ``[[aid, weight], …]``, weight descending then aid ascending."""
    return [[b, w] for b, w in top_items(row, k)]


def export_rows(
    clicks: dict[int, dict[int, int]],
    carts_orders: dict[int, dict[int, int]],
    buy2buy: dict[int, dict[int, int]],
    k: int = 20,
) -> Iterator[dict[str, object]]:
    """The shared output format of stream and batch: one object per aid, aid ascending."""
    aids: Iterable[int] = sorted(set(clicks) | set(carts_orders) | set(buy2buy))
    empty: dict[int, int] = {}
    for aid in aids:
        yield {
            "aid": aid,
            "clicks": top_k(clicks.get(aid, empty), k),
            "carts_orders": top_k(carts_orders.get(aid, empty), k),
            "buy2buy": top_k(buy2buy.get(aid, empty), k),
        }
