"""A trained sequence model as a candidate source of the re-rankers, swapped when its file is.

Every process that builds candidates (the embedded pipeline, each worker, each web node)
opens the same file (``LIVEREC_SEQUENCE_MODEL``) and checks it every ``check_s`` seconds: when
its size or modification time changed, the new model is loaded whole and swapped in between
two calls, like the River snapshots. A file that does not load (half written, another format)
is reported once and the model that serves goes on serving; write the new file beside the old
one and rename it over, so readers never see half of it.

A session's answer is cached for its last history: the lists served and the learning that
judges the next event ask the same question.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from online_models.sequence.model import SequenceModel

log = logging.getLogger(__name__)


class SequenceSource:
    """``top(aids, k)``: the model's best next items after a session's items (oldest first)."""

    def __init__(self, path: str | Path, check_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.check_s, self._clock = check_s, clock
        self._signature = self._stat()
        if self._signature is None:
            raise ValueError(f"sequence model {self.path}: no such file")
        self.model = SequenceModel.load(self.path)  # a bad file at start is an error
        self.swaps = 0
        self.failed_loads = 0
        self._failed: tuple[int, int] | None = None  # the last file that did not load
        self._checked = clock()
        self._last: tuple[tuple[tuple[int, ...], int], list[tuple[int, float]]] | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def refresh(self, force: bool = False) -> bool:
        """Swap in the file's model if it changed since it was loaded (checked at most every
        ``check_s`` seconds unless ``force``); True when it swapped."""
        now = self._clock()
        if not force and now - self._checked < self.check_s:
            return False
        self._checked = now
        signature = self._stat()
        if signature is None or signature == self._signature:
            return False
        try:
            model = SequenceModel.load(self.path)
        except ValueError as exc:
            if signature != self._failed:  # once per bad file, not every check
                log.warning("sequence model not swapped, the one loaded serves on: %s", exc)
            self.failed_loads += 1
            self._failed = signature
            return False
        self.model, self._signature, self._last = model, signature, None
        self.swaps += 1
        log.info("sequence model swapped in from %s (%s, %d items)", self.path,
                 model.config.kind, len(model.vocabulary))
        return True

    def top(self, aids: Sequence[int], k: int = 20) -> list[tuple[int, float]]:
        self.refresh()
        key = (tuple(aids[-self.model.config.max_len:]), k)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        found = self.model.top(key[0], k)
        self._last = (key, found)
        return found
