"""Directed next-item counts: how often a shopper went from ``a`` straight to ``b``.

Co-visitation is symmetric and spans 30 events, so it says "these items go together"; it cannot
say which of them people look at *next*. In click streams the immediate successor is the
strongest single signal for the next click (sequential rules, SR, in the session-based
literature), so the re-ranker reads it beside the matrices. Counts are plain integers added per
transition, so their sums are exact in any order, like the matrices'. Like them, they keep the
steps of the current epoch and the previous one only (a step belongs to the epoch of its
target event): items nobody views are forgotten.
"""

from __future__ import annotations

from online_models.rows import summed, top_items


class Successors:
    """``a → {b: count}`` over consecutive events of a session with different aids.

    >>> s = Successors()
    >>> for a, b in [(1, 2), (1, 2), (1, 3), (2, 1)]:
    ...     s.add(a, b)
    >>> s.top(1, 5)
    [(2, 2), (3, 1)]
    """

    def __init__(self, max_neighbors: int = 0, epoch_ms: int = 0) -> None:
        self.rows: dict[int, dict[int, int]] = {}
        """The current epoch's steps."""
        self.old_rows: dict[int, dict[int, int]] = {}
        """The previous epoch's steps."""
        self.max_neighbors = max_neighbors
        """Keep at most ``3 × max_neighbors`` per row, pruned to the ``max_neighbors`` heaviest
        when it overflows (0 = unbounded)."""
        self.epoch_ms = epoch_ms
        """Epoch length (the co-visitation epoch's); 0: one epoch for ever."""
        self.epoch = 0
        self._top: dict[int, list[tuple[int, int]]] = {}

    def add(self, a: int, b: int, ts: int = 0) -> None:
        """Count one step from ``a`` to ``b`` at time ``ts`` (a repeat of the same item is not
        a step)."""
        if a == b:
            return
        rows = self.rows
        if self.epoch_ms:
            epoch = ts // self.epoch_ms
            if epoch > self.epoch:
                self._enter(epoch)
                rows = self.rows
            elif epoch < self.epoch:
                if epoch < self.epoch - 1:
                    return  # forgotten already
                rows = self.old_rows
        row = rows.get(a)
        if row is None:
            row = rows[a] = {}
        row[b] = row.get(b, 0) + 1
        self._top.pop(a, None)
        cap = self.max_neighbors
        if cap and len(row) > 3 * cap:
            rows[a] = dict(top_items(row, cap))

    def _enter(self, epoch: int) -> None:
        self.old_rows = self.rows if epoch == self.epoch + 1 else {}
        self.rows = {}
        self.epoch = epoch
        self._top.clear()

    def top(self, aid: int, k: int = 20) -> list[tuple[int, int]]:
        """The ``k`` most frequent successors: count descending, then aid ascending."""
        cached = self._top.get(aid)
        if cached is None or len(cached) < k:
            row = summed(self.old_rows.get(aid), self.rows.get(aid))
            cached = self._top[aid] = top_items(row, k)
        return cached[:k]

    def __len__(self) -> int:
        return len(self.rows.keys() | self.old_rows.keys())
