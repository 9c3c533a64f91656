"""The two offline protocols' data: OTTO's time split with cut test sessions, and next item.

Both take events (from any reader), never file names, so this package sits above ``stream``
and ``online_models`` and below the CLI that opens files (``docs/architecture.md``).

**OTTO** (design.md §4): the last ``test_days`` days before the latest session start are the
test period. Sessions that start in it are test sessions; every other session is training
data up to the cut-off (what happened after it is dropped, as OTTO's own split drops it).
Each test session with at
least two events is cut at a uniformly random position ``1 ≤ r < n`` (seeded): its first ``r``
events are given, and its labels are what followed: the next click, and the sets of aids carted
and ordered afterwards.

**Next item**: the training file is learned from; every test session is replayed and judged at
every position after its first event. :func:`day_slice` cuts such a pair out of one file as the
session-based literature prepared YOOCHOOSE: sessions that end in the last day are the test,
the earlier ones the training; test events of items never trained on are dropped, and test
sessions left with one event. Leaving out the last days first gives earlier time slices.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from online_models.covisitation import DAY_MS
from stream.events import CARTS, CLICKS, ORDERS, TYPE_NAMES, Event

Labels = dict[str, Any]
"""One test session's truth: ``{"clicks": aid | None, "carts": [aid…], "orders": [aid…]}``."""


def time_ordered(events: Iterable[Event]) -> list[Event]:
    """Events by time; a stable sort keeps each session's own order for equal times."""
    return sorted(events, key=lambda e: e.ts)


def group_sessions(sessions: Iterable[tuple[int, list[Event]]]) -> dict[int, list[Event]]:
    """Merge groups of one session that a row format split apart; each in time order."""
    merged: dict[int, list[Event]] = {}
    for session, events in sessions:
        merged.setdefault(session, []).extend(events)
    for events in merged.values():
        events.sort(key=lambda e: e.ts)
    return merged


@dataclass
class OttoSplit:
    """Training events, the given part of each test session, and its labels."""

    train: list[Event]
    test: list[Event]
    labels: dict[int, Labels] = field(default_factory=dict)
    cutoff_ts: int = 0

    @property
    def test_sessions(self) -> list[int]:
        return list(self.labels)


def otto_split(sessions: Iterable[tuple[int, list[Event]]], test_days: float = 7.0,
               seed: int = 0) -> OttoSplit:
    """Split a log as OTTO split theirs (module docstring); deterministic for a seed."""
    if test_days <= 0:
        raise ValueError("test_days must be positive")
    grouped = group_sessions(sessions)
    if not grouped:
        raise ValueError("no events to split")
    # From the latest session *start*: a few sessions come back days later, and their last
    # events would otherwise push the test period past where any session begins.
    last_start = max(events[0].ts for events in grouped.values())
    cutoff = last_start - round(test_days * DAY_MS)
    rng = random.Random(seed)
    train: list[Event] = []
    test: list[Event] = []
    labels: dict[int, Labels] = {}
    for session in sorted(grouped):
        events = grouped[session]
        if events[0].ts < cutoff:
            train.extend(e for e in events if e.ts < cutoff)
        elif len(events) >= 2:
            cut = rng.randint(1, len(events) - 1)
            test.extend(events[:cut])
            labels[session] = session_labels(events[cut:])
    if not labels:
        raise ValueError(f"no test session: nothing starts in the last {test_days:g} days with "
                         "two or more events (use a smaller --test-days?)")
    if not train:
        raise ValueError(f"no training events before the last {test_days:g} days "
                         "(use a smaller --test-days?)")
    return OttoSplit(time_ordered(train), time_ordered(test), labels, cutoff)


def session_labels(rest: list[Event]) -> Labels:
    """OTTO's labels of what followed the cut: the next click, later carts and orders."""
    click = next((e.aid for e in rest if e.type == CLICKS), None)
    carts = list(dict.fromkeys(e.aid for e in rest if e.type == CARTS))
    orders = list(dict.fromkeys(e.aid for e in rest if e.type == ORDERS))
    return {"clicks": click, "carts": carts, "orders": orders}


def truth_sets(labels: Labels) -> dict[str, list[int]]:
    """Labels as the metric reads them: a list per objective (the click as one element).

    A click label of aid 0 is no label: OTTO's official ``evaluate.py`` tests the label for
    truth, and 0 is false in Python, so it neither counts the session for clicks nor scores
    it. Scores here equal the official script's on every input.
    """
    click = labels.get("clicks")
    return {"clicks": [click] if click else [],
            "carts": list(labels.get("carts") or []), "orders": list(labels.get("orders") or [])}


def write_split(split: OttoSplit, out_dir: Path) -> dict[str, Path]:
    """Write ``train.jsonl``, ``test.jsonl`` and ``test_labels.jsonl`` in OTTO's formats, so
    a score can be cross-checked with OTTO's own evaluation script."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"{name}.jsonl" for name in ("train", "test", "test_labels")}
    _write_sessions(paths["train"], split.train)
    _write_sessions(paths["test"], split.test)
    with open(paths["test_labels"], "wb") as out:
        for session, labels in split.labels.items():
            present = {k: v for k, v in labels.items() if v not in (None, [])}
            out.write(orjson.dumps({"session": session, "labels": present}) + b"\n")
    return paths


def _write_sessions(path: Path, events: list[Event]) -> None:
    by_session: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        by_session.setdefault(e.session, []).append(
            {"aid": e.aid, "ts": e.ts, "type": TYPE_NAMES[e.type]})
    with open(path, "wb") as out:
        for session in sorted(by_session):
            out.write(orjson.dumps({"session": session, "events": by_session[session]}) + b"\n")


def read_labels(path: Path) -> dict[int, Labels]:
    """OTTO's ``test_labels.jsonl``: ``{"session", "labels": {"clicks", "carts", "orders"}}``;
    a bad line is an error naming the line, since a label file is scored whole."""
    labels: dict[int, Labels] = {}
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                session, raw = int(obj["session"]), obj["labels"]
                click = raw.get("clicks")
                labels[session] = {
                    "clicks": int(click) if click is not None else None,
                    "carts": [int(a) for a in raw.get("carts", [])],
                    "orders": [int(a) for a in raw.get("orders", [])]}
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError,
                    AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a label line "
                                 f'({{"session": …, "labels": {{…}}}}): {exc}') from None
    return labels


def day_slice(events: Iterable[Event], back: int = 1) -> tuple[list[Event], list[Event]]:
    """``(train, test)`` of the ``back``-th last day: leave out the sessions that end in the
    last ``back − 1`` days, then test on those that end in the last day left (the 24 h before
    its latest event) and train on the rest (see the module docstring)."""
    if back < 1:
        raise ValueError("the slice counts days back from the end: 1 or more")
    sessions: dict[int, list[Event]] = {}
    for event in events:
        sessions.setdefault(event.session, []).append(event)
    ends = {s: max(e.ts for e in evs) for s, evs in sessions.items()}
    for _ in range(back - 1):
        if not ends:
            break
        cut = max(ends.values()) - DAY_MS
        ends = {s: t for s, t in ends.items() if t < cut}
    if not ends:
        raise ValueError(f"no sessions left {back - 1} days before the end of the file")
    cut = max(ends.values()) - DAY_MS
    train = [e for s, t in ends.items() if t < cut for e in sessions[s]]
    known = {e.aid for e in train}
    test: list[Event] = []
    for s, t in ends.items():
        if t >= cut:
            kept = [e for e in sessions[s] if e.aid in known]
            if len(kept) >= 2:
                test.extend(kept)
    if not train or not test:
        raise ValueError(f"day {back} back from the end leaves no training or no test sessions")
    return time_ordered(train), time_ordered(test)
