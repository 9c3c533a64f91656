"""The co-visitation definition computed in batch, over a whole log at once.

This is the reference the incremental :class:`~online_models.covisitation.CoVisitation` must
equal exactly. It is organised the way a batch job is (group by session, enumerate pairs,
group occurrences by directed pair, split runs, fold per cell) and shares nothing with the
incremental code but the weight function, so a bug in either shows up as a difference.

The log is a sequence of ``(session, aid, ts, type)`` in arrival order; only each session's own
order matters (it decides the windows and runs), never how sessions interleave. A run's
increment belongs to the epoch of the occurrence that made it, in that epoch's scale. The
matrices keep the last two epochs of the whole log: a clicks cell is the previous epoch's
increments summed, shifted right ``epoch_half_lives`` bits, plus the latest epoch's sum.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from online_models.covisitation import TYPE_WEIGHTS, CovisConfig, TimeWeight
from online_models.types import CLICKS

Matrix = dict[int, dict[int, int]]
# One directed occurrence: (tau, clicks weight in its epoch's scale, type weight, the epoch
# tau is in).
_Occurrence = tuple[int, int, int, int]
# One increment of a cell: (the epoch it is in, increment).
_Increment = tuple[int, int]


def batch_covisitation(
    log: Sequence[tuple[int, int, int, int]], config: CovisConfig | None = None
) -> tuple[Matrix, Matrix, Matrix]:
    """Return ``(clicks, carts_orders, buy2buy)`` as ``{aid: {neighbour: weight}}``."""
    config = config or CovisConfig()
    if not log:
        return {}, {}, {}
    tw = TimeWeight(0, config.half_life_ms, config.epoch_half_lives)
    final_epoch = max(tw.epoch(ts) for _, _, ts, _ in log)

    sessions: dict[int, list[int]] = defaultdict(list)
    for index, event in enumerate(log):
        sessions[event[0]].append(index)

    # cell -> [(own epoch, increment)], one list per matrix
    clicks_inc: dict[tuple[int, int], list[_Increment]] = defaultdict(list)
    carts_inc: dict[tuple[int, int], list[_Increment]] = defaultdict(list)
    buys_inc: dict[tuple[int, int], list[_Increment]] = defaultdict(list)

    kept = final_epoch - 1  # increments of older epochs are forgotten
    for indices in sessions.values():
        occurrences = _all_family_occurrences(log, indices, config, tw)
        for pair, occ in occurrences.items():
            _runs_all_family(pair, occ, config, clicks_inc, carts_inc)
        buy_indices = [i for i in indices if log[i][3] != CLICKS]
        for pair, taus in _buy_family_occurrences(log, buy_indices, config).items():
            began: int | None = None
            for tau in taus:
                if began is None or tau - began > config.buy_max_gap_ms:
                    buys_inc[pair].append((tw.epoch(tau), 1))
                    began = tau
    return (
        _fold(clicks_inc, tw.shift, kept),
        _fold(carts_inc, 0, kept),
        _fold(buys_inc, 0, kept),
    )


def _all_family_occurrences(
    log: Sequence[tuple[int, int, int, int]],
    indices: list[int],
    config: CovisConfig,
    tw: TimeWeight,
) -> dict[tuple[int, int], list[_Occurrence]]:
    occurrences: dict[tuple[int, int], list[_Occurrence]] = defaultdict(list)
    gap = config.max_gap_ms
    for pos, j in enumerate(indices):
        _, b, t, type_b = log[j]
        own = tw.epoch(t)
        w_time = tw.weight(t, own)
        for i in indices[max(0, pos - config.window):pos]:
            _, a, ta, type_a = log[i]
            if a == b or abs(t - ta) >= gap:
                continue
            occurrences[(a, b)].append((t, w_time, TYPE_WEIGHTS[type_b], own))
            occurrences[(b, a)].append((t, w_time, TYPE_WEIGHTS[type_a], own))
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
    for tau, w_time, w_type, own in occurrences:
        if run_start is None or tau - run_start > config.max_gap_ms:
            run_start, run_type = tau, w_type
            clicks_inc[pair].append((own, w_time))
            carts_inc[pair].append((own, w_type))
        elif w_type > run_type:
            carts_inc[pair].append((own, w_type - run_type))
            run_type = w_type


def _buy_family_occurrences(
    log: Sequence[tuple[int, int, int, int]], indices: list[int], config: CovisConfig
) -> dict[tuple[int, int], list[int]]:
    occurrences: dict[tuple[int, int], list[int]] = defaultdict(list)
    for pos, j in enumerate(indices):
        b, t = log[j][1], log[j][2]
        for i in indices[max(0, pos - config.window):pos]:
            a, ta = log[i][1], log[i][2]
            if a == b or abs(t - ta) >= config.buy_max_gap_ms:
                continue
            occurrences[(a, b)].append(t)
            occurrences[(b, a)].append(t)
    return occurrences


def _fold(
    increments: dict[tuple[int, int], list[_Increment]], shift: int, kept: int
) -> Matrix:
    """Each cell: the sum of its increments of epoch ``kept`` shifted right ``shift`` bits,
    plus the sum of the later (last) epoch's; increments of earlier epochs are forgotten."""
    matrix: Matrix = defaultdict(dict)
    for (x, y), items in increments.items():
        previous = sum(inc for epoch, inc in items if epoch == kept)
        total = (previous >> shift) + sum(inc for epoch, inc in items if epoch > kept)
        if total:  # a clicks weight floored to 0 is no cell (rows.decode)
            matrix[x][y] = total
    return dict(matrix)
