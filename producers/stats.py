"""Summary statistics of a session log, to hold synthetic data up against OTTO's.

The generator is only useful if its output resembles the real thing on the figures that drive a
recommender's behaviour: type mix (what the objectives see), session lengths (how much history a
list is built from), item skew (how far popularity alone gets) and repeats (how much the
session's own history is worth). :func:`session_stats` measures them in one streaming pass and
:func:`format_stats` prints them beside a reference such as :data:`OTTO_TRAIN_STATS`.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from stream.events import CARTS, CLICKS, ORDERS, Event

__all__ = ["OTTO_DERIVED_KEYS", "OTTO_TRAIN_STATS", "format_stats", "session_stats"]

#: OTTO's train set as published in the otto-de/recsys-dataset README ("Dataset Statistics"):
#: counts, and the #events per session and per item tables (mean, std, min, 50/75/90/95 %,
#: max). Figures the README does not give (p99, top-1 % share, repeats, sessions with a cart
#: or order) are left out rather than guessed. Keys in :data:`OTTO_DERIVED_KEYS` are computed
#: from the published counts, not published themselves.
OTTO_TRAIN_STATS: dict[str, float] = {
    "sessions": 12_899_779,
    "items": 1_855_603,
    "events": 216_716_096,
    "clicks": 194_720_954,
    "carts": 16_896_191,
    "orders": 5_098_951,
    "click_share": 194_720_954 / 216_716_096,
    "cart_share": 16_896_191 / 216_716_096,
    "order_share": 5_098_951 / 216_716_096,
    "session_length_min": 2,
    "session_length_p50": 6,
    "session_length_mean": 16.80,
    "session_length_std": 33.58,
    "session_length_p75": 15,
    "session_length_p90": 39,
    "session_length_p95": 68,
    "session_length_max": 500,
    "item_events_min": 3,
    "item_events_p50": 20,
    "item_events_mean": 116.79,
    "item_events_std": 728.85,
    "item_events_p75": 56,
    "item_events_p90": 183,
    "item_events_p95": 398,
    "item_events_max": 129_004,
}
#: Reference figures computed from published ones (the type shares).
OTTO_DERIVED_KEYS = frozenset({"click_share", "cart_share", "order_share"})

# Rows of the table, in order, with how to print them.
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("sessions", "sessions", "int"),
    ("events", "events", "int"),
    ("items", "items (distinct aids seen)", "int"),
    ("clicks", "clicks", "int"),
    ("carts", "carts", "int"),
    ("orders", "orders", "int"),
    ("click_share", "share of clicks", "pct"),
    ("cart_share", "share of carts", "pct"),
    ("order_share", "share of orders", "pct"),
    ("session_length_min", "events/session min", "num"),
    ("session_length_p50", "events/session median", "num"),
    ("session_length_mean", "events/session mean", "num"),
    ("session_length_std", "events/session std", "num"),
    ("session_length_p75", "events/session p75", "num"),
    ("session_length_p90", "events/session p90", "num"),
    ("session_length_p95", "events/session p95", "num"),
    ("session_length_p99", "events/session p99", "num"),
    ("session_length_max", "events/session max", "num"),
    ("item_events_min", "events/item min", "num"),
    ("item_events_p50", "events/item median", "num"),
    ("item_events_mean", "events/item mean", "num"),
    ("item_events_std", "events/item std", "num"),
    ("item_events_p75", "events/item p75", "num"),
    ("item_events_p90", "events/item p90", "num"),
    ("item_events_p95", "events/item p95", "num"),
    ("item_events_max", "events/item max", "num"),
    ("top1pct_item_share", "events on top 1 % of items", "pct"),
    ("repeat_click_rate", "clicks on an aid seen earlier in the session", "pct"),
    ("sessions_with_cart", "sessions with a cart", "pct"),
    ("sessions_with_order", "sessions with an order", "pct"),
)


def _describe(prefix: str, values: np.ndarray) -> dict[str, float]:
    """pandas-``describe``-style figures (linear percentiles), as OTTO's README reports them."""
    if len(values) == 0:
        return {}
    p50, p75, p90, p95, p99 = np.percentile(values, [50, 75, 90, 95, 99]).tolist()
    return {
        f"{prefix}_min": int(values.min()),
        f"{prefix}_p50": p50,
        f"{prefix}_mean": float(values.mean()),
        f"{prefix}_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        f"{prefix}_p75": p75,
        f"{prefix}_p90": p90,
        f"{prefix}_p95": p95,
        f"{prefix}_p99": p99,
        f"{prefix}_max": int(values.max()),
    }


def session_stats(sessions: Iterable[tuple[int, list[Event]]]) -> dict[str, Any]:
    """Measure a session log in one pass (memory: one counter per distinct aid).

    ``repeat_click_rate`` is the share of clicks whose aid already occurred (as any type) earlier
    in the same session: the signal that makes "recommend what they looked at" work.
    ``top1pct_item_share`` is the share of events on the most frequent 1 % of distinct aids.

    >>> stats = session_stats([(0, [Event(0, 7, 1, 0), Event(0, 7, 2, 0), Event(0, 7, 3, 1)])])
    >>> stats["events"], stats["repeat_click_rate"], stats["sessions_with_cart"]
    (3, 0.5, 1.0)
    """
    lengths = array("q")
    per_item: Counter[int] = Counter()
    types = [0, 0, 0]
    repeat_clicks = with_cart = with_order = 0
    for _, events in sessions:
        if not events:
            continue
        lengths.append(len(events))
        seen: set[int] = set()
        kinds = [0, 0, 0]
        for _, aid, _, kind in events:
            kinds[kind] += 1
            if kind == CLICKS and aid in seen:
                repeat_clicks += 1
            seen.add(aid)
        per_item.update(event.aid for event in events)
        for kind in (CLICKS, CARTS, ORDERS):
            types[kind] += kinds[kind]
        with_cart += kinds[CARTS] > 0
        with_order += kinds[ORDERS] > 0
    n_sessions, n_events = len(lengths), sum(types)
    stats: dict[str, Any] = {
        "sessions": n_sessions,
        "events": n_events,
        "items": len(per_item),
        "clicks": types[CLICKS],
        "carts": types[CARTS],
        "orders": types[ORDERS],
    }
    if n_events == 0:
        return stats
    stats.update({
        "click_share": types[CLICKS] / n_events,
        "cart_share": types[CARTS] / n_events,
        "order_share": types[ORDERS] / n_events,
    })
    stats.update(_describe("session_length", np.frombuffer(lengths, dtype=np.int64)))
    counts = np.fromiter(per_item.values(), dtype=np.int64, count=len(per_item))
    stats.update(_describe("item_events", counts))
    top = max(1, math.ceil(len(counts) / 100))
    stats["top1pct_item_share"] = float(np.sort(counts)[-top:].sum() / n_events)
    stats["repeat_click_rate"] = repeat_clicks / types[CLICKS] if types[CLICKS] else 0.0
    stats["sessions_with_cart"] = with_cart / n_sessions
    stats["sessions_with_order"] = with_order / n_sessions
    return stats


def _cell(value: Any, style: str) -> str:
    if value is None:
        return "–"
    if style == "int":
        return f"{int(value):,}"
    if style == "pct":
        return f"{100 * value:.2f} %"
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 1000 else f"{value:.2f}"


def format_stats(stats: Mapping[str, Any], reference: Mapping[str, Any] | None = None, *,
                 name: str = "this log", reference_name: str = "reference") -> str:
    """A plain-text table of :func:`session_stats`; with ``reference``, a second column beside
    it ("–" where the reference has no figure)."""
    header = ["statistic", name] + ([reference_name] if reference is not None else [])
    rows = [header]
    for key, label, style in _ROWS:
        if key not in stats and (reference is None or key not in reference):
            continue
        row = [label, _cell(stats.get(key), style)]
        if reference is not None:
            row.append(_cell(reference.get(key), style))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                         strict=True)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
