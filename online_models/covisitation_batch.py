"""The co-visitation definition computed in batch, over a whole log at once.

This is the reference the incremental :class:`~online_models.covisitation.CoVisitation` must
equal exactly. It is organised the way a batch job is (group by session, enumerate pairs,
group occurrences by directed pair, split runs, fold per cell) and shares nothing with the
incremental code but the weight function, so a bug in either shows up as a difference.

The log is a sequence of ``(session, aid, ts, type)`` in arrival order. "Arrival" matters in one
place only: the renormalisation epoch in force at an event is the largest epoch of any event up
to it. The matrices keep the increments of the last two epochs only (the latest epoch of the
whole log and the one before): a run's increment belongs to the epoch of the occurrence that
made it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from online_models.covisitation import TYPE_WEIGHTS, CovisConfig, TimeWeight
from online_models.types import CLICKS

Matrix = dict[int, dict[int, int]]
# One directed occurrence: (arrival index, tau, clicks weight, epoch in force, type weight,
# the epoch tau is in).
_Occurrence = tuple[int, int, int, int, int, int]
# One increment of a cell: (arrival index, epoch in force, increment, the epoch it is in).
_Increment = tuple[int, int, int, int]


def batch_covisitation(
    log: Sequence[tuple[int, int, int, int]], config: CovisConfig | None = None
) -> tuple[Matrix, Matrix, Matrix]:
    """Return ``(clicks, carts_orders, buy2buy)`` as ``{aid: {neighbour: weight}}``."""
    config = config or CovisConfig()
    if not log:
        return {}, {}, {}
    tw = TimeWeight(0, config.half_life_ms, config.epoch_half_lives)
    epoch_at: list[int] = []
    current = 0
    for _, _, ts, _ in log:
        current = max(current, tw.epoch(ts))
        epoch_at.append(current)
    final_epoch = current

    sessions: dict[int, list[int]] = defaultdict(list)
    for index, event in enumerate(log):
        sessions[event[0]].append(index)

    # cell -> [(arrival index, epoch in force, increment, own epoch)], one list per matrix
    clicks_inc: dict[tuple[int, int], list[_Increment]] = defaultdict(list)
    carts_inc: dict[tuple[int, int], list[_Increment]] = defaultdict(list)
    buys_inc: dict[tuple[int, int], list[_Increment]] = defaultdict(list)

    kept = final_epoch - 1  # increments of older epochs are forgotten
    for indices in sessions.values():
        occurrences = _all_family_occurrences(log, indices, config, tw, epoch_at)
        for pair, occ in occurrences.items():
            _runs_all_family(pair, occ, config, clicks_inc, carts_inc)
        buy_indices = [i for i in indices if log[i][3] != CLICKS]
        for pair, taus in _buy_family_occurrences(log, buy_indices, config).items():
            began: int | None = None
            for index, tau in taus:
                if began is None or tau - began > config.buy_max_gap_ms:
                    buys_inc[pair].append((index, 0, 1, tw.epoch(tau)))
                    began = tau
    for increments in (clicks_inc, carts_inc, buys_inc):
        for cell in list(increments):
            increments[cell] = [item for item in increments[cell] if item[3] >= kept]
            if not increments[cell]:
                del increments[cell]

    return (
        _fold(clicks_inc, tw.shift, final_epoch),
        _fold(carts_inc, 0, 0),
        _fold(buys_inc, 0, 0),
    )


def _all_family_occurrences(
    log: Sequence[tuple[int, int, int, int]],
    indices: list[int],
    config: CovisConfig,
    tw: TimeWeight,
    epoch_at: list[int],
) -> dict[tuple[int, int], list[_Occurrence]]:
    occurrences: dict[tuple[int, int], list[_Occurrence]] = defaultdict(list)
    gap = config.max_gap_ms
    for pos, j in enumerate(indices):
        _, b, t, type_b = log[j]
        in_force = epoch_at[j]
        own = tw.epoch(t)
        w_time = tw.weight(t, own) >> (tw.shift * (in_force - own))
        for i in indices[max(0, pos - config.window):pos]:
            _, a, ta, type_a = log[i]
            if a == b or abs(t - ta) >= gap:
                continue
            occurrences[(a, b)].append((j, t, w_time, in_force, TYPE_WEIGHTS[type_b], own))
            occurrences[(b, a)].append((j, t, w_time, in_force, TYPE_WEIGHTS[type_a], own))
    return occurrences


def _runs_all_family(
    pair: tuple[int, int],
    occurrences: list[_Occurrence],
    config: CovisConfig,
    clicks_inc: dict[tuple[int, int], list[_Increment]],
    carts_inc: dict[tuple[int, int], list[_Increment]],
) -> None:
    """Split one session's occurrences of one directed pair into runs (a run lasts the gap from
    its first occurrence); emit each run's weight:
    clicks = its first occurrence's time weight, carts_orders = its max type weight (emitted
    as increments when the max grows, which sums to the same)."""
    run_start: int | None = None
    run_type = 0
    for index, tau, w_time, epoch, w_type, own in occurrences:
        if run_start is None or tau - run_start > config.max_gap_ms:
            run_start, run_type = tau, w_type
            clicks_inc[pair].append((index, epoch, w_time, own))
            carts_inc[pair].append((index, 0, w_type, own))
        elif w_type > run_type:
            carts_inc[pair].append((index, 0, w_type - run_type, own))
            run_type = w_type


def _buy_family_occurrences(
    log: Sequence[tuple[int, int, int, int]], indices: list[int], config: CovisConfig
) -> dict[tuple[int, int], list[tuple[int, int]]]:
    occurrences: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for pos, j in enumerate(indices):
        b, t = log[j][1], log[j][2]
        for i in indices[max(0, pos - config.window):pos]:
            a, ta = log[i][1], log[i][2]
            if a == b or abs(t - ta) >= config.buy_max_gap_ms:
                continue
            occurrences[(a, b)].append((j, t))
            occurrences[(b, a)].append((j, t))
    return occurrences


def _fold(
    increments: dict[tuple[int, int], list[_Increment]], shift: int, final_epoch: int
) -> Matrix:
    """Sum each cell's increments in arrival order, renormalising when the epoch advances."""
    matrix: Matrix = defaultdict(dict)
    for (x, y), items in increments.items():
        items.sort(key=lambda item: item[0])
        total, epoch = 0, items[0][1]
        for _, in_force, inc, _ in items:
            total >>= shift * (in_force - epoch)
            epoch = in_force
            total += inc
        total >>= shift * (final_epoch - epoch)
        if total:  # a clicks weight floored to 0 is no cell (rows.decode)
            matrix[x][y] = total
    return dict(matrix)
