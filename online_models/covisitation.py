"""Three co-visitation matrices, updated incrementally, one event at a time.

The exact definition is in ``docs/covisitation.md``; in short, for each session and each of two
*families* of events:

* ``all`` (every event; feeds the ``clicks`` and ``carts_orders`` matrices): pairs of events at
  most :attr:`CovisConfig.window` events apart, less than 24 h apart, different aids;
* ``buys`` (carts and orders only; feeds ``buy2buy``): the same over the cart/order
  subsequence, less than 14 days apart.

Each pair (i, j), i before j, is two *directed occurrences* ``a_i → a_j`` and ``a_j → a_i`` at
time ``tau = t_j``. Occurrences of one directed pair in one session form *runs*: a new run starts
when more than the family's gap has passed since the previous occurrence. A matrix cell is the
sum over sessions and runs of the run's **maximum** weight, so a pair counts once per visit
however often the shopper bounces between the two items (the public OTTO recipe's "once per
session"), and the sum does not depend on the order sessions interleave.

Weights are integers so that sums are exact in any order; that is what makes the incremental
result equal to :func:`online_models.covisitation_batch.batch_covisitation` bit for bit:

* ``clicks``: ``1024 · 2^((tau − landmark − k·E) / half_life)``, forward exponential decay
  (recent pairs weigh more, nothing is ever rescanned). ``E`` is an epoch of
  ``epoch_half_lives`` half-lives; when the stream enters epoch ``k + 1`` every clicks value is
  shifted right by ``epoch_half_lives`` bits (renormalisation), which keeps values below 2^43.
* ``carts_orders``: the type of the occurrence's target event: clicks 1, carts 6, orders 3.
* ``buy2buy``: 1.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from online_models.sessions import SessionState
from online_models.types import CLICKS

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS

#: Matrix names, in the order of ``liverec covis`` output.
MATRICES: Final = ("clicks", "carts_orders", "buy2buy")
#: carts_orders weight by the type of the occurrence's target event (clicks, carts, orders).
TYPE_WEIGHTS: Final = (1, 6, 3)
#: clicks weights are fixed point: 1.0 == 1024.
WEIGHT_ONE: Final = 1024


@dataclass(frozen=True)
class CovisConfig:
    """The parameters of the definition. Changing one changes every matrix value."""

    window: int = 30
    """Pairs are at most this many events apart (within the family's sequence)."""
    max_gap_ms: int = DAY_MS
    """``all`` family: pair and run gap, 24 h."""
    buy_max_gap_ms: int = 14 * DAY_MS
    """``buys`` family: pair and run gap, 14 days."""
    half_life_ms: int = 14 * DAY_MS
    """clicks time weight doubles every half-life: 14 days matches the public recipe's 1→4 over
    OTTO's four weeks."""
    epoch_half_lives: int = 32
    """Renormalise the clicks matrix every this many half-lives (448 days by default)."""
    max_neighbors: int = 0
    """Serving bound: keep at most ``2 × max_neighbors`` entries per row, pruning to the
    ``max_neighbors`` heaviest when a row overflows. 0 = unbounded (exact)."""

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if min(self.max_gap_ms, self.buy_max_gap_ms, self.half_life_ms) <= 0:
            raise ValueError("gaps and half-life must be positive")
        if not 1 <= self.epoch_half_lives <= 40:
            raise ValueError("epoch_half_lives must be in 1..40")
        if self.max_neighbors < 0:
            raise ValueError("max_neighbors must be >= 0")


class TimeWeight:
    """Forward-decay clicks weight with epoch renormalisation (see the module docstring)."""

    __slots__ = ("landmark", "half_life", "epoch_ms", "shift")

    def __init__(self, landmark: int, half_life_ms: int, epoch_half_lives: int) -> None:
        self.landmark = landmark
        self.half_life = half_life_ms
        self.epoch_ms = half_life_ms * epoch_half_lives
        self.shift = epoch_half_lives

    def epoch(self, ts: int) -> int:
        """Epoch index of a timestamp (never negative)."""
        return max(0, (ts - self.landmark) // self.epoch_ms)

    def weight(self, ts: int, epoch: int) -> int:
        """Weight of time ``ts`` in the scale of ``epoch``, at least 1."""
        exponent = (ts - self.landmark - epoch * self.epoch_ms) / self.half_life
        return max(1, round(WEIGHT_ONE * 2.0**exponent))


class CoVisitation:
    """The three matrices and their incremental update.

    >>> cv = CoVisitation()
    >>> state = SessionState.empty(cv.config.window)
    >>> for aid, ts, typ in [(1, 0, 0), (2, 1000, 0), (1, 2000, 1)]:
    ...     cv.update(state, aid, ts, typ)
    >>> cv.row("carts_orders", 2)   # 2 → 1 once (max of click 1 and cart 6)
    {1: 6}
    >>> cv.top("clicks", 1, 5)
    [(2, 1024)]
    """

    def __init__(self, config: CovisConfig | None = None) -> None:
        self.config = config or CovisConfig()
        self.clicks: dict[int, dict[int, int]] = {}
        self.carts_orders: dict[int, dict[int, int]] = {}
        self.buy2buy: dict[int, dict[int, int]] = {}
        self.time_weight: TimeWeight | None = None
        self.epoch = 0
        self.pruned_rows = 0
        self._top_cache: dict[tuple[str, int], list[tuple[int, int]]] = {}

    # -- update ---------------------------------------------------------------------------------
    def update(self, state: SessionState, aid: int, ts: int, etype: int) -> None:
        """Extend the matrices with one event of the session whose state is ``state``."""
        tw = self.time_weight
        if tw is None:
            tw = self.time_weight = TimeWeight(
                ts, self.config.half_life_ms, self.config.epoch_half_lives
            )
        epoch = tw.epoch(ts)
        if epoch > self.epoch:
            self._renormalise(epoch)
        current = self.epoch
        w_time = tw.weight(ts, epoch)
        if epoch < current:  # a late event from an older epoch: bring it to today's scale
            w_time >>= tw.shift * (current - epoch)
        if ts > state.max_ts:
            state.max_ts = ts
        self._pair_all(state, aid, ts, etype, w_time, current, tw.shift)
        state.recent.append((aid, ts, etype))
        if etype != CLICKS:
            self._pair_buys(state, aid, ts)
            state.recent_buys.append((aid, ts))

    def _pair_all(
        self, state: SessionState, b: int, t: int, tb: int, w_time: int, epoch: int,
        shift: int,
    ) -> None:
        gap = self.config.max_gap_ms
        runs = state.runs
        clicks, carts_orders = self.clicks, self.carts_orders
        touched: set[int] = set()
        for a, ta, type_a in state.recent:
            if a == b or not -gap < t - ta < gap:
                continue
            for x, y, w_type in ((a, b, TYPE_WEIGHTS[tb]), (b, a, TYPE_WEIGHTS[type_a])):
                key = (x, y)
                run = runs.get(key)
                if run is None or t - run[0] > gap:
                    runs[key] = [t, w_time, epoch, w_type]
                    inc_time, inc_type = w_time, w_type
                else:
                    run[0] = t
                    prev = run[1] >> (shift * (epoch - run[2])) if run[2] != epoch else run[1]
                    inc_time = w_time - prev if w_time > prev else 0
                    run[1] = prev + inc_time
                    run[2] = epoch
                    inc_type = w_type - run[3] if w_type > run[3] else 0
                    run[3] += inc_type
                    if not (inc_time or inc_type):
                        continue
                touched.add(x)
                if inc_time:
                    row = clicks.get(x)
                    if row is None:
                        row = clicks[x] = {}
                    row[y] = row.get(y, 0) + inc_time
                if inc_type:
                    row = carts_orders.get(x)
                    if row is None:
                        row = carts_orders[x] = {}
                    row[y] = row.get(y, 0) + inc_type
        if touched:
            self._after_rows_changed(touched, ("clicks", "carts_orders"))

    def _pair_buys(self, state: SessionState, b: int, t: int) -> None:
        gap = self.config.buy_max_gap_ms
        runs = state.buy_runs
        buy2buy = self.buy2buy
        touched: set[int] = set()
        for a, ta in state.recent_buys:
            if a == b or not -gap < t - ta < gap:
                continue
            for x, y in ((a, b), (b, a)):
                key = (x, y)
                last = runs.get(key)
                runs[key] = t
                if last is not None and t - last <= gap:
                    continue  # same run: the weight is 1 either way
                row = buy2buy.get(x)
                if row is None:
                    row = buy2buy[x] = {}
                row[y] = row.get(y, 0) + 1
                touched.add(x)
        if touched:
            self._after_rows_changed(touched, ("buy2buy",))

    def _after_rows_changed(self, rows: set[int], matrices: tuple[str, ...]) -> None:
        cache = self._top_cache
        cap = self.config.max_neighbors
        for name in matrices:
            matrix = getattr(self, name)
            for x in rows:
                cache.pop((name, x), None)
                if cap and len(matrix.get(x, ())) > 2 * cap:
                    self._prune(matrix, x, cap)

    def _prune(self, matrix: dict[int, dict[int, int]], x: int, cap: int) -> None:
        keep = heapq.nsmallest(cap, matrix[x].items(), key=lambda kv: (-kv[1], kv[0]))
        matrix[x] = dict(keep)
        self.pruned_rows += 1

    def _renormalise(self, epoch: int) -> None:
        """Enter a later epoch: shift every clicks value right (open runs shift lazily)."""
        assert self.time_weight is not None
        bits = self.time_weight.shift * (epoch - self.epoch)
        for row in self.clicks.values():
            for y in row:
                row[y] >>= bits
        self.epoch = epoch
        self._top_cache.clear()

    # -- read -----------------------------------------------------------------------------------
    def row(self, matrix: str, aid: int) -> dict[int, int]:
        """One row of a matrix as ``{neighbour: weight}`` (a copy is not made: do not mutate)."""
        if matrix not in MATRICES:
            raise KeyError(f"unknown matrix {matrix!r}; expected one of {MATRICES}")
        return getattr(self, matrix).get(aid, {})  # type: ignore[no-any-return]

    def top(self, matrix: str, aid: int, k: int = 20) -> list[tuple[int, int]]:
        """The ``k`` heaviest neighbours of ``aid``: weight descending, then aid ascending."""
        key = (matrix, aid)
        cached = self._top_cache.get(key)
        if cached is not None and len(cached) >= k:
            return cached[:k]
        row = self.row(matrix, aid)
        result = heapq.nsmallest(k, row.items(), key=lambda kv: (-kv[1], kv[0]))
        self._top_cache[key] = result
        return result

    def items(self) -> list[int]:
        """Every aid that has a row in any matrix, ascending."""
        return sorted(set(self.clicks) | set(self.carts_orders) | set(self.buy2buy))

    def export(self, k: int = 20) -> Iterator[dict[str, object]]:
        """Rows in the ``liverec covis`` format, one per aid ascending."""
        yield from export_rows(self.clicks, self.carts_orders, self.buy2buy, k)

    def cell_count(self) -> int:
        return sum(len(r) for m in (self.clicks, self.carts_orders, self.buy2buy)
                   for r in m.values())


def top_k(row: dict[int, int], k: int) -> list[list[int]]:
    """``k`` heaviest entries as ``[[aid, weight], …]``, weight descending then aid ascending."""
    return [[b, w] for b, w in heapq.nsmallest(k, row.items(), key=lambda kv: (-kv[1], kv[0]))]


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
