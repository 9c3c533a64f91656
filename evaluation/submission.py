"""Kaggle's OTTO submission format: ``session_type,labels`` with space-separated aids.

``liverec predict`` writes it and ``liverec evaluate --labels … --predictions …`` reads it, so
any score can be cross-checked with OTTO's official evaluation script, and any submission
(ours or another tool's) scored by ours.
"""

from __future__ import annotations

import csv
from pathlib import Path

from online_models.recommend import Lists
from stream.events import TYPE_NAMES

HEADER = ("session_type", "labels")


def write_submission(predictions: dict[int, Lists], path: Path, k: int = 20) -> int:
    """Three rows per session (``12899779_clicks,aid aid …``); return the rows written."""
    rows = 0
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for session, lists in predictions.items():
            for name, aids in zip(TYPE_NAMES, (lists.clicks, lists.carts, lists.orders),
                                  strict=True):
                writer.writerow((f"{session}_{name}", " ".join(map(str, aids[:k]))))
                rows += 1
    return rows


def read_submission(path: Path) -> dict[int, Lists]:
    """A submission back as lists; a malformed row is an error naming its line."""
    found: dict[int, dict[str, list[int]]] = {}
    with open(path, newline="") as source:
        reader = csv.reader(source)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise ValueError(f"{path}:1: expected the header 'session_type,labels', "
                             f"got {','.join(header or [])!r:.60}")
        for number, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                key, labels = row
                session_text, _, name = key.rpartition("_")
                if name not in TYPE_NAMES:
                    raise ValueError(f"type {name!r} is not clicks, carts or orders")
                found.setdefault(int(session_text), {})[name] = [int(a) for a in labels.split()]
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not 'SESSION_TYPE,AID AID …': {exc}"
                                 ) from None
    return {session: Lists(lists.get("clicks", []), lists.get("carts", []),
                           lists.get("orders", []))
            for session, lists in found.items()}
