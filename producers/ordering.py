"""Put a session-ordered log into global time order, in bounded memory, for replay.

Session files list each session's events together, but a live shop interleaves them: replaying
OTTO "as it happened" needs all 216 M events merged by timestamp, which does not fit in memory
as Python objects. :func:`time_ordered` sorts fixed-size chunks with numpy (a stable sort, so
events with equal ts keep their file order), spills each sorted run to a temporary ``.npy`` file,
and k-way merges the memory-mapped runs with :func:`heapq.merge`, which is also stable and takes
earlier runs first on ties. The result equals ``sorted(events, key=ts)`` exactly.
"""

from __future__ import annotations

import heapq
import shutil
import tempfile
from collections.abc import Generator, Iterable, Iterator
from itertools import chain, islice, repeat
from operator import itemgetter
from pathlib import Path

import numpy as np

from stream.events import Event

__all__ = ["RUN_DTYPE", "time_ordered"]

#: One event on disk: ts first, because that is what runs are sorted and merged by.
RUN_DTYPE = np.dtype([("ts", "<i8"), ("session", "<i8"), ("aid", "<i8"), ("type", "i1")])
#: Rows turned back into ``Event`` tuples at a time, per run, while merging.
_READ_ROWS = 16_384
_new = tuple.__new__


def time_ordered(events: Iterable[Event], *, chunk_events: int = 2_000_000,
                 tmpdir: Path | None = None) -> Generator[Event, None, None]:
    """Yield ``events`` sorted by ``ts``, ties in input order, holding at most about
    ``chunk_events`` events in memory (plus a small read buffer per spilled run).

    With more than one chunk, sorted runs go to a private temporary directory (under ``tmpdir``
    if given); it is removed when the iterator is exhausted, closed or garbage-collected.

    >>> log = [Event(1, 10, 5, 0), Event(1, 11, 9, 1), Event(2, 12, 5, 0), Event(2, 13, 7, 0)]
    >>> [(e.session, e.ts) for e in time_ordered(log, chunk_events=2)]
    [(1, 5), (2, 5), (2, 7), (1, 9)]
    """
    if chunk_events < 1:
        raise ValueError(f"chunk_events must be >= 1, got {chunk_events}")
    source = iter(events)
    first = _sorted_chunk(source, chunk_events)
    following = next(source, None)
    if following is None:
        # Everything fitted in one chunk: no files at all.
        yield from _events(first)
        return
    source = chain((following,), source)
    workdir = Path(tempfile.mkdtemp(prefix="liverec-order-", dir=tmpdir))
    try:
        runs = [_spill(first, workdir, 0)]
        del first
        while True:
            chunk = _sorted_chunk(source, chunk_events)
            if len(chunk) == 0:
                break
            runs.append(_spill(chunk, workdir, len(runs)))
            del chunk
        mapped = [np.load(run, mmap_mode="r") for run in runs]
        yield from heapq.merge(*(_events(run) for run in mapped), key=itemgetter(2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _sorted_chunk(source: Iterator[Event], size: int) -> np.ndarray:
    """Read up to ``size`` events and return them as a ts-sorted (stable) record array."""
    rows = list(islice(source, size))
    chunk = np.empty(len(rows), dtype=RUN_DTYPE)
    if rows:
        session, aid, ts, kind = zip(*rows, strict=True)
        chunk["session"], chunk["aid"], chunk["ts"], chunk["type"] = session, aid, ts, kind
        chunk = chunk[np.argsort(chunk["ts"], kind="stable")]
    return chunk


def _spill(chunk: np.ndarray, workdir: Path, index: int) -> Path:
    path = workdir / f"run-{index:05d}.npy"
    np.save(path, chunk, allow_pickle=False)
    return path


def _events(run: np.ndarray) -> Iterator[Event]:
    """A (possibly memory-mapped) run back as ``Event`` tuples, a slice at a time."""
    for start in range(0, len(run), _READ_ROWS):
        part = np.asarray(run[start:start + _READ_ROWS])
        # tuple.__new__ makes the same Event as Event(...) without its Python-level __new__:
        # half the cost, on every event a command orders.
        yield from map(_new, repeat(Event), zip(part["session"].tolist(), part["aid"].tolist(),
                                                part["ts"].tolist(), part["type"].tolist(),
                                                strict=True))
