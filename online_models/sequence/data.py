"""From sessions to what a sequence model reads: the item vocabulary and training windows.

Items get indices ``1..V`` in order of first appearance (0 pads). A session of ``n`` items
gives windows of at most ``max_len`` inputs, each input followed by its target (the next
item), taken back from the session's end, so that a long session trains on all of itself
and a short one on one left-padded window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int32]


class Vocabulary:
    """aid ↔ index (1-based; 0 is padding and every unknown aid)."""

    def __init__(self, aids: Iterable[int]) -> None:
        self.aids = np.fromiter(dict.fromkeys(aids), dtype=np.int64)
        self.index = {int(a): i for i, a in enumerate(self.aids, 1)}

    def __len__(self) -> int:
        return len(self.aids)

    def encode(self, aids: Iterable[int]) -> list[int]:
        """Known aids' indices, unknown ones left out."""
        index = self.index
        return [i for i in (index.get(a, 0) for a in aids) if i]


def left_padded(rows: Sequence[Sequence[int]], length: int) -> IntArray:
    """Rows of indices, each cut to its last ``length`` and padded with 0 on the left."""
    out = np.zeros((len(rows), length), dtype=np.int32)
    for r, row in enumerate(rows):
        row = row[-length:]
        if row:
            out[r, length - len(row):] = row
    return out


def training_windows(sessions: Sequence[Sequence[int]], max_len: int,
                     types: Sequence[Sequence[int]] | None = None
                     ) -> tuple[IntArray, IntArray, IntArray]:
    """(inputs, targets, target types), each ``(windows, max_len)``: targets are the inputs
    shifted by one (0 where there is nothing to predict); the types are the targets' event
    types (all 0, clicks, without ``types``)."""
    inputs: list[list[int]] = []
    targets: list[list[int]] = []
    kinds: list[list[int]] = []
    for n, items in enumerate(sessions):
        of = types[n] if types is not None else None
        end = len(items)
        while end >= 2:
            start = max(0, end - max_len - 1)
            chunk = list(items[start:end])
            inputs.append(chunk[:-1])
            targets.append(chunk[1:])
            kinds.append(list(of[start + 1:end]) if of is not None else [0] * (len(chunk) - 1))
            end = start + 1 if start > 0 else 0
    return (left_padded(inputs, max_len), left_padded(targets, max_len),
            left_padded(kinds, max_len))
