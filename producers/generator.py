"""Synthetic OTTO-like sessions with structure a recommender can learn, reproducible to the byte.

Real OTTO data is 11 GB and cannot ship with liverec, yet the demo, the load tests and the
benchmarks need millions of events that *look* like OTTO's: the same type mix, the same skewed
session lengths and item popularity, and, above all, regularities that co-visitation can learn
(related items co-occur, carts follow clicks, orders buy what was carted). This module draws such
sessions from a small generative model; ``docs/generator.md`` describes it and compares its
statistics with OTTO's published ones.

The model, per session: a length from a lognormal fitted to OTTO's quantiles; one to a few
*interests* (categories, the extra ones often the first one's complement, e.g. phones and cases);
a walk that starts at a popular item of an interest and steps to neighbouring items of the same
category (similar products), sometimes restarting, sometimes re-clicking an item seen a few steps
back; carts that repeat the item just clicked (or a neighbour); and, for some sessions with carts,
one order burst of (some of) the carted items, all with one timestamp as in OTTO.

Determinism: one ``SeedSequence(seed)`` feeds a catalog stream and a session stream, and sessions
are drawn in fixed blocks, so ``(config)`` gives the same events on every run with the same numpy
(numpy may change a distribution's algorithm between major versions). Speed: everything inside a
block of ~4,000 sessions is vectorised; only building the ``Event`` tuples is per event.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

import numpy as np
import orjson
from numpy.random import PCG64, Generator, SeedSequence

from stream.events import CARTS, CLICKS, ORDERS, TYPE_NAMES, Event

__all__ = ["Catalog", "GeneratorConfig", "build_catalog", "generate_sessions", "popular_items",
           "popular_ranks", "write_jsonl"]

#: OTTO's first training timestamp, 2022-07-31 22:00 UTC (midnight in Germany).
OTTO_START_MS = 1_659_304_800_000
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
#: Sessions drawn per vectorised block (rounded up to whole minutes of start times).
_BLOCK_SESSIONS = 4096
# Roles of a browsing position: a new item from the walk, a look back, a cart of the last item.
_NEW, _REVISIT, _COPY_PREVIOUS, _STRAY = 0, 1, 2, 3


@dataclass(frozen=True)
class GeneratorConfig:
    """Size, seed and the knobs of the generative model; defaults are calibrated to OTTO."""

    sessions: int
    items: int
    seed: int = 0
    #: First session start (ms); defaults to OTTO's first day. Starts spread over ``days``.
    start_ms: int = OTTO_START_MS
    days: float = 28.0
    #: Mean items per category; categories are what a shopper's interests are made of.
    category_size: int = 100
    #: Item popularity is lognormal: OTTO's events per item (median 20, p90 183, p95 398,
    #: mean 117) fit a lognormal with sigma ~1.7 better than a pure power law.
    popularity_sigma: float = 1.7
    #: Session length (all events) ~ lognormal(ln median, sigma) clipped to [2, max_length];
    #: median 6 and sigma 1.44 come close to OTTO's p50 6, p75 15, p90 39, p95 68, mean 16.8.
    length_median: float = 6.0
    length_sigma: float = 1.44
    max_length: int = 500
    #: Extra interests per doubling of session length (Poisson mean); long sessions wander more.
    extra_interests: float = 0.25
    max_interests: int = 4
    #: Chance an extra interest is the first one's complementary category (phone -> case).
    complement_prob: float = 0.5
    #: Chance a new item restarts the walk at a popular item of one of the interests, instead
    #: of stepping to a neighbour (a similar product, up to ``neighbour_width`` ranks away).
    restart_prob: float = 0.3
    neighbour_width: int = 4
    #: Chance a click is a stray: a popular item from anywhere in the shop (home page, deals),
    #: outside the session's interests. This is the noise that caps what any model can learn.
    stray_prob: float = 0.08
    #: Chance a click goes back to an item seen before, ``1/revisit_decay`` events back on average.
    revisit_prob: float = 0.25
    revisit_decay: float = 0.5
    #: Mean chance per event of a cart; per-session propensity is gamma(cart_shape): most
    #: sessions never cart, a few cart a lot.
    cart_rate: float = 0.0865
    cart_shape: float = 0.4
    #: Chance a cart is a neighbour of the clicked item rather than the clicked item itself.
    cart_related_prob: float = 0.15
    #: Chance a session with carts ends in an order; each distinct carted item is then bought
    #: with ``buy_prob`` (the last carted one always).
    order_prob: float = 0.65
    buy_prob: float = 0.6
    #: Gap between events ~ lognormal(median seconds, sigma); with ``break_prob`` a break of
    #: hours to days instead (the shopper comes back later).
    gap_median_s: float = 25.0
    gap_sigma: float = 1.3
    break_prob: float = 0.04
    break_median_h: float = 10.0
    break_sigma: float = 1.2
    #: Time from the last browsing event to the order burst.
    checkout_median_s: float = 120.0
    #: Session starts follow a daily cycle: 1 + amplitude * cos(hour - peak_hour), hours
    #: counted from ``start_ms`` (OTTO's starts at midnight German time).
    diurnal_amplitude: float = 0.5
    peak_hour: float = 20.0

    def __post_init__(self) -> None:
        if self.sessions < 0 or self.items < 1:
            raise ValueError("need sessions >= 0 and items >= 1")
        if self.days <= 0 or self.category_size < 1 or not 2 <= self.max_length:
            raise ValueError("need days > 0, category_size >= 1 and max_length >= 2")
        if self.max_interests < 1 or self.neighbour_width < 1:
            raise ValueError("need max_interests >= 1 and neighbour_width >= 1")
        for f in fields(self):
            if f.name.endswith("_prob") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"{f.name} must be a probability, got {getattr(self, f.name)}")
        if not 0.0 < self.revisit_decay <= 1.0 or not 0.0 <= self.diurnal_amplitude <= 1.0:
            raise ValueError("need 0 < revisit_decay <= 1 and 0 <= diurnal_amplitude <= 1")


@dataclass(frozen=True)
class Catalog:
    """The item universe behind a config: categories, popularity and related categories.

    ``order`` lists aids grouped by category, most popular first inside each; ``bounds[c]:
    bounds[c+1]`` is category ``c``'s slice of it, and an item's neighbours are the items next to
    it there. ``cumulative`` is the running sum of ``popularity`` along ``order``.
    """

    category: np.ndarray
    popularity: np.ndarray
    complement: np.ndarray
    order: np.ndarray
    bounds: np.ndarray
    cumulative: np.ndarray

    @property
    def categories(self) -> int:
        return len(self.complement)


def _streams(seed: int) -> tuple[Generator, Generator]:
    catalog_seed, session_seed = SeedSequence(seed).spawn(2)
    return Generator(PCG64(catalog_seed)), Generator(PCG64(session_seed))


def build_catalog(config: GeneratorConfig) -> Catalog:
    """The catalog a config's sessions are drawn from (deterministic in ``config.seed``)."""
    rng, _ = _streams(config.seed)
    n = config.items
    count = max(1, min(n, round(n / config.category_size)))
    # Category sizes vary (flat Dirichlet), every category has at least one item.
    sizes = 1 + rng.multinomial(n - count, rng.dirichlet(np.ones(count)))
    category = np.repeat(np.arange(count), sizes)[rng.permutation(n)]
    popularity = rng.lognormal(0.0, config.popularity_sigma, n)
    popularity /= popularity.sum()
    order = np.lexsort((-popularity, category))
    bounds = np.concatenate(([0], np.cumsum(np.bincount(category, minlength=count))))
    if count > 1:
        complement = (np.arange(count) + 1 + rng.integers(0, count - 1, count)) % count
    else:
        complement = np.zeros(1, dtype=np.int64)
    return Catalog(category, popularity, complement, order, bounds,
                   np.cumsum(popularity[order]))


def generate_sessions(config: GeneratorConfig) -> Iterator[tuple[int, list[Event]]]:
    """Yield ``(session, events)`` for sessions ``0..N-1`` in order of their start time.

    >>> config = GeneratorConfig(sessions=3, items=50, seed=1)
    >>> sessions = list(generate_sessions(config))
    >>> [sid for sid, _ in sessions], sessions == list(generate_sessions(config))
    ([0, 1, 2], True)
    """
    catalog = build_catalog(config)
    _, rng = _streams(config.seed)
    counts = _starts_per_minute(config, rng)
    minute_ms = config.days * _DAY_MS / len(counts)
    ends = np.cumsum(counts)
    first = 0
    while first < config.sessions:
        # A block is whole minutes, so sorting starts inside a block sorts them globally.
        minute = int(np.searchsorted(ends, first + _BLOCK_SESSIONS, side="left"))
        last = int(ends[min(minute, len(ends) - 1)])
        minutes = np.searchsorted(ends, np.arange(first, last), side="right")
        offsets = rng.random(last - first) * minute_ms
        starts = config.start_ms + np.sort(minutes * minute_ms + offsets).astype(np.int64)
        yield from _draw_block(config, catalog, rng, first, starts)
        first = last


def _starts_per_minute(config: GeneratorConfig, rng: Generator) -> np.ndarray:
    """How many sessions start in each minute, following the daily cycle."""
    minutes = max(1, math.ceil(config.days * 1440))
    hours = (np.arange(minutes) + 0.5) * (config.days * 24 / minutes)
    rate = 1 + config.diurnal_amplitude * np.cos(2 * np.pi * (hours - config.peak_hour) / 24)
    return rng.multinomial(config.sessions, rate / rate.sum())


def popular_items(catalog: Catalog, shape: int | tuple[int, int],
                   rng: Generator) -> np.ndarray:
    """Draw aids from the whole catalog with chance proportional to popularity."""
    target = rng.random(shape) * catalog.cumulative[-1]
    index = np.searchsorted(catalog.cumulative, target).clip(0, len(catalog.order) - 1)
    return catalog.order[index]


def popular_ranks(catalog: Catalog, categories: np.ndarray, rng: Generator) -> np.ndarray:
    """Draw one item per given category with chance proportional to popularity; return its
    rank (position inside the category's slice of ``catalog.order``)."""
    lo, hi = catalog.bounds[categories], catalog.bounds[categories + 1]
    below = np.where(lo > 0, catalog.cumulative[np.maximum(lo - 1, 0)], 0.0)
    target = below + rng.random(len(categories)) * (catalog.cumulative[hi - 1] - below)
    index = np.searchsorted(catalog.cumulative, target, side="right")
    return np.clip(index, lo, hi - 1) - lo


def _reflect(rank: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Fold a walk back into ``[0, size)`` (mirror at both ends) so it never sticks at an edge."""
    period = np.maximum(2 * (size - 1), 1)
    folded = np.mod(rank, period)
    return np.where(size > 1, np.where(folded >= size, period - folded, folded), 0)


def _segment_starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)


def _draw_block(config: GeneratorConfig, catalog: Catalog, rng: Generator, first_id: int,
                starts: np.ndarray) -> Iterator[tuple[int, list[Event]]]:
    """Draw the sessions ``first_id, first_id+1, ...`` that start at ``starts``."""
    n = len(starts)
    length = np.clip(np.rint(rng.lognormal(math.log(config.length_median), config.length_sigma,
                                           n)), 2, config.max_length).astype(np.int64)
    offset = _segment_starts(length)
    total = int(length.sum())
    session = np.repeat(np.arange(n), length)
    position = np.arange(total) - offset[session]

    # Interests: slot 0 by category popularity, extra slots often the complement of slot 0.
    slots = config.max_interests
    interest = catalog.category[popular_items(catalog, (n, slots), rng)]
    complement = rng.random((n, slots)) < config.complement_prob
    complement[:, 0] = False
    interest = np.where(complement, catalog.complement[interest[:, :1]], interest)
    extra = rng.poisson(config.extra_interests * np.log2(length))
    interests = np.minimum(slots, 1 + extra)

    # Roles and types of the browsing positions.
    cart_chance = np.minimum(0.6, config.cart_rate
                             * rng.gamma(config.cart_shape, 1 / config.cart_shape, n))
    is_cart = (rng.random(total) < cart_chance[session]) & (position > 0)
    look_back = rng.random(total) < config.revisit_prob
    role = np.full(total, _NEW, dtype=np.int8)
    role[look_back & (position > 0)] = _REVISIT
    role[(rng.random(total) < config.stray_prob) & ~look_back & (position > 0)] = _STRAY
    cart_copies = rng.random(total) >= config.cart_related_prob
    role[is_cart] = np.where(cart_copies[is_cart], _COPY_PREVIOUS, _NEW)

    # The walk over new items: runs restart at a popular item of an interest, then step to
    # neighbours (similar items) inside that category.
    new = np.flatnonzero(role == _NEW)
    restart = (rng.random(len(new)) < config.restart_prob) | (position[new] == 0)
    run_of = np.cumsum(restart) - 1
    run_at = new[restart]
    run_session = session[run_at]
    slot = np.where(position[run_at] == 0, 0,
                    (rng.random(len(run_at)) * interests[run_session]).astype(np.int64))
    run_category = interest[run_session, slot]
    anchor = popular_ranks(catalog, run_category, rng)
    width = config.neighbour_width
    step = rng.integers(1, width + 1, len(new)) * rng.choice(np.array([-1, 1]), len(new))
    walked = np.cumsum(np.where(restart, 0, step))
    walked -= walked[np.flatnonzero(restart)][run_of]
    category_of_new = run_category[run_of]
    size = catalog.bounds[category_of_new + 1] - catalog.bounds[category_of_new]
    rank = _reflect(anchor[run_of] + walked, size)
    aid = np.zeros(total, dtype=np.int64)
    aid[new] = catalog.order[catalog.bounds[category_of_new] + rank]
    stray = np.flatnonzero(role == _STRAY)
    aid[stray] = popular_items(catalog, len(stray), rng)

    # Look-backs and cart copies take the item of an earlier position: resolve chains of
    # copies by pointer jumping (each round doubles the distance followed).
    source = np.arange(total)
    back = np.minimum(rng.geometric(config.revisit_decay, total), position)
    source = np.where(role == _REVISIT, source - back, source)
    source = np.where(role == _COPY_PREVIOUS, np.arange(total) - 1, source)
    while True:
        further = source[source]
        if np.array_equal(further, source):
            break
        source = further
    aid = aid[source]
    kind = np.where(is_cart, CARTS, CLICKS).astype(np.int64)

    order_aids, order_session, burst_at = _order_bursts(config, rng, session, position, aid,
                                                        is_cart, length)
    yield from _assemble(config, rng, first_id, starts, length, offset, session, position, aid,
                         kind, order_aids, order_session, burst_at)


def _order_bursts(config: GeneratorConfig, rng: Generator, session: np.ndarray,
                  position: np.ndarray, aid: np.ndarray, is_cart: np.ndarray,
                  length: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick the sessions that order, what they buy (distinct carted items, in cart order) and
    where in the session the burst goes (after the last cart, before or among later clicks)."""
    n = len(length)
    carts = np.flatnonzero(is_cart)
    last_cart = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_cart, session[carts], position[carts])
    orders = (last_cart >= 0) & (rng.random(n) < config.order_prob)
    # Distinct (session, aid) among carts of ordering sessions, in order of their first cart.
    carts = carts[orders[session[carts]]]
    pairs = np.stack([session[carts], aid[carts]], axis=1)
    _, first = np.unique(pairs, axis=0, return_index=True)
    first = np.sort(first)
    bought_session, bought_aid = session[carts][first], aid[carts][first]
    last_of_session = np.append(bought_session[1:] != bought_session[:-1], True)
    keep = last_of_session | (rng.random(len(first)) < config.buy_prob)
    burst_at = np.full(n, -1, dtype=np.int64)
    ordering = np.flatnonzero(orders)
    span = length[ordering] - last_cart[ordering]
    burst_at[ordering] = last_cart[ordering] + 1 + (rng.random(len(ordering)) * span).astype(
        np.int64)
    return bought_aid[keep], bought_session[keep], burst_at


def _assemble(config: GeneratorConfig, rng: Generator, first_id: int, starts: np.ndarray,
              length: np.ndarray, offset: np.ndarray, session: np.ndarray,
              position: np.ndarray, aid: np.ndarray, kind: np.ndarray,
              order_aids: np.ndarray, order_session: np.ndarray,
              burst_at: np.ndarray) -> Iterator[tuple[int, list[Event]]]:
    """Insert order bursts, draw the gaps, cut at ``max_length`` and emit the events."""
    n = len(length)
    burst = np.bincount(order_session, minlength=n)
    out_length = length + burst
    out_offset = _segment_starts(out_length)
    total = int(out_length.sum())
    shifted = position + np.where(position >= burst_at[session], burst[session], 0)
    browse_slot = out_offset[session] + shifted
    burst_rank = np.arange(len(order_session)) - _segment_starts(burst)[order_session]
    burst_slot = out_offset[order_session] + burst_at[order_session] + burst_rank

    out_aid = np.empty(total, dtype=np.int64)
    out_kind = np.empty(total, dtype=np.int64)
    gap = np.empty(total, dtype=np.int64)
    out_aid[browse_slot], out_kind[browse_slot] = aid, kind
    out_aid[burst_slot], out_kind[burst_slot] = order_aids, ORDERS

    browse_gap = rng.lognormal(math.log(config.gap_median_s * 1000), config.gap_sigma,
                               len(aid))
    breaks = rng.random(len(aid)) < config.break_prob
    browse_gap[breaks] = rng.lognormal(math.log(config.break_median_h * _HOUR_MS),
                                       config.break_sigma, int(breaks.sum()))
    gap[browse_slot] = np.where(position == 0, 0, np.maximum(1, np.rint(browse_gap)))
    checkout = np.maximum(1, np.rint(rng.lognormal(
        math.log(config.checkout_median_s * 1000), 1.0, len(order_session))))
    gap[burst_slot] = np.where(burst_rank == 0, checkout, 0)

    out_session = np.repeat(np.arange(n), out_length)
    elapsed = np.cumsum(gap)
    ts = starts[out_session] + elapsed - elapsed[out_offset][out_session]
    keep_length = np.minimum(out_length, config.max_length)
    events = list(map(Event, (out_session + first_id).tolist(), out_aid.tolist(), ts.tolist(),
                      out_kind.tolist()))
    for index, (begin, count) in enumerate(zip(out_offset.tolist(), keep_length.tolist(),
                                               strict=True)):
        yield first_id + index, events[begin:begin + count]


def write_jsonl(path: Path, sessions: Iterable[tuple[int, list[Event]]]) -> int:
    """Write sessions as OTTO jsonl (gzipped when the name ends in ``.gz``); return the event
    count. The gzip header carries no name and mtime 0, so equal sessions give equal bytes."""
    path = Path(path)
    names = TYPE_NAMES
    written = 0
    with open(path, "wb") as raw:
        sink: BinaryIO = raw
        zipped = None
        if path.name.endswith(".gz"):
            zipped = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                   compresslevel=6)
            sink = zipped  # type: ignore[assignment]
        lines: list[bytes] = []
        for session, events in sessions:
            lines.append(orjson.dumps({"session": session, "events": [
                {"aid": aid, "ts": ts, "type": names[kind]} for _, aid, ts, kind in events]}))
            written += len(events)
            if len(lines) >= 1024:
                sink.write(b"\n".join(lines) + b"\n")
                lines.clear()
        if lines:
            sink.write(b"\n".join(lines) + b"\n")
        if zipped is not None:
            zipped.close()
    return written


#: RetailRocket's event names per event type (view, addtocart, transaction).
RETAILROCKET_EVENTS = ("view", "addtocart", "transaction")


def write_retailrocket(path: Path, sessions: Iterable[tuple[int, list[Event]]]) -> int:
    """Write sessions as RetailRocket's ``events.csv`` (a visitor per session; an order is a
    transaction with an id of its own); return the event count. Its reader cuts a visitor's
    events into sessions at 30-minute gaps, as it does for the real file."""
    written = 0
    transaction = 0
    with open(path, "w", encoding="ascii", newline="\n") as out:
        out.write("timestamp,visitorid,event,itemid,transactionid\n")
        for session, events in sessions:
            rows = []
            for _, aid, ts, kind in events:
                paid = ""
                if kind == 2:
                    transaction += 1
                    paid = str(transaction)
                rows.append(f"{ts},{session},{RETAILROCKET_EVENTS[kind]},{aid},{paid}\n")
            out.write("".join(rows))
            written += len(events)
    return written
