"""The whole deployment's figures on every web node: each worker (and each replay) reports its
own through the store every few seconds, and a web node sums the reports current.

A worker's figures cover the partitions it holds, which no other worker holds, so sessions and
prequential counts add up. A report lapses when its process stops reporting, and its figures
leave the sums: a figure is shown only where something measured it, never as a 0 for "not
measured here".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from online_models.metrics import OBJECTIVE_WEIGHTS

#: A report lasts this many reporting intervals: one late report does not drop a worker.
LAPSE_INTERVALS = 3
#: A finished replay's report stays this long, so the page says "done" instead of "idle".
FINISHED_REPLAY_MS = 600_000
_COUNTS = tuple(f"{kind}_{objective}" for objective in OBJECTIVE_WEIGHTS
                for kind in ("judged", "hits"))


def worker_report(*, sessions: int, lag: int, rejected: int,
                  judging: Mapping[str, int]) -> bytes:
    """What one worker reports, what :func:`summed` adds up: its counts, and its
    prequential counts per objective (events come from the store, which counts them all)."""
    return orjson.dumps({"sessions": sessions, "lag": lag, "rejected": rejected,
                         **{key: judging[key] for key in _COUNTS if key in judging}})


def summed(reports: Iterable[bytes]) -> dict[str, Any]:
    """The workers' reports added up: ``workers``, and with at least one, ``sessions``,
    ``lag``, ``rejected``, the prequential counts and ``recall`` per objective (None for an
    objective nobody judged yet). A report that does not parse is left out."""
    totals: dict[str, Any] = {"workers": 0}
    for body in reports:
        try:
            report = orjson.loads(body)
            figures = {key: int(report[key]) for key in ("sessions", "lag", "rejected")}
            counts = {key: int(report[key]) for key in _COUNTS if key in report}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        totals["workers"] += 1
        for key, value in (figures | counts).items():
            totals[key] = totals.get(key, 0) + value
    if any(f"judged_{objective}" in totals for objective in OBJECTIVE_WEIGHTS):
        totals["recall"] = {
            objective: (totals.get(f"hits_{objective}", 0) / judged
                        if (judged := totals.get(f"judged_{objective}", 0)) else None)
            for objective in OBJECTIVE_WEIGHTS}
    return totals


def current_replay(reports: Iterable[bytes]) -> dict[str, Any]:
    """The replay the page shows: a running one (the one furthest from done when several
    run), else the last one finished, else ``idle``."""
    running, finished = [], []
    for body in reports:
        try:
            replay = orjson.loads(body)
            state, total = replay["state"], int(replay["total"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if state == "running" and total > 0:
            running.append(replay)
        elif state == "finished":
            finished.append(replay)
    if running:
        return min(running, key=lambda r: int(r.get("replayed", 0)) / int(r["total"]))
    if finished:
        return max(finished, key=lambda r: int(r.get("finished_ms", 0)))
    return {"state": "idle"}
