"""A trained sequence model as the stream serves it: numpy only, loaded from one file.

The file (``liverec train --out MODEL``) is a numpy ``.npz`` archive: the weights by name,
``aids`` (the vocabulary: index ``i`` is ``aids[i - 1]``) and ``meta``, a JSON text with the
format version and the :class:`SequenceConfig`. It loads without pickle, so a model file
cannot run code.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from online_models.sequence import network
from online_models.sequence.config import SequenceConfig
from online_models.sequence.data import Vocabulary, left_padded

FORMAT: Final = 1


class SequenceModel:
    """Scores every known item after a session's items, and its top ``k``.

    >>> model = SequenceModel.untrained(SequenceConfig(kind="gru4rec", dim=8), [5, 6, 7])
    >>> sorted(aid for aid, _ in model.top([5, 6], k=3))
    [5, 6, 7]
    """

    def __init__(self, config: SequenceConfig, vocabulary: Vocabulary,
                 params: dict[str, np.ndarray]) -> None:
        self.config = config
        self.vocabulary = vocabulary
        self.params = {name: np.asarray(value, dtype=np.float32)
                       for name, value in params.items()}
        out, bias = network.output(self.params)
        # The real items' output rows, contiguous: one matrix-vector product per call.
        self._out = np.ascontiguousarray(out[1:])
        self._bias = None if bias is None else np.ascontiguousarray(bias[1:])

    @classmethod
    def untrained(cls, config: SequenceConfig, aids: Sequence[int]) -> SequenceModel:
        vocabulary = Vocabulary(aids)
        return cls(config, vocabulary, network.init_params(config, len(vocabulary),
                                                           config.seed))

    def encode(self, rows: Sequence[Sequence[int]]) -> npt.NDArray[np.int32]:
        """Sessions' aids (oldest first) as the left-padded index rows the network reads."""
        return left_padded([self.vocabulary.encode(r) for r in rows], self.config.max_len)

    def scores_batch(self, seq: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
        """Every item's score after each row of ``seq`` (index 0, padding, is -inf)."""
        scores = np.asarray(network.scores(self.params, seq, self.config, np),
                            dtype=np.float32)
        scores[:, 0] = -np.inf
        return scores

    def q_scores(self, seq: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
        """``sqn``: every item's Q-value after each row of ``seq`` (the head that learned the
        rewards; the next-item head ranks)."""
        if "q" not in self.params:
            raise ValueError(f"a {self.config.kind} model has no Q head")
        h = network.hidden(self.params, seq, self.config, np)[:, -1]
        q = h @ self.params["q"].T + self.params["q.b"]
        q[:, 0] = -np.inf
        return q.astype(np.float32)

    def top(self, history: Sequence[int], k: int = 20) -> list[tuple[int, float]]:
        """The ``k`` best items after ``history`` (the session's aids, oldest first), best
        first; nothing when no item of it is known."""
        seq = self.encode([history])
        known = np.flatnonzero(seq[0])
        if not len(known):
            return []
        # Left padding changes nothing (masked keys in SASRec, a held state in GRU4Rec, the
        # positions aligned on the right), so only the real positions are computed: a
        # session's median is 6 events of the 30 a window holds.
        state = network.hidden(self.params, seq[:, known[0]:], self.config, np)[0, -1]
        scores = self._out @ state
        if self._bias is not None:
            scores += self._bias
        best = _top_indices(scores, min(k, len(scores)))
        aids = self.vocabulary.aids
        return [(int(aids[i]), float(scores[i])) for i in best]

    def save(self, path: Path) -> None:
        meta = json.dumps({"format": FORMAT, "config": self.config.to_json()})
        arrays: dict[str, Any] = {"aids": self.vocabulary.aids, "meta": np.array(meta),
                                  **self.params}
        with open(path, "wb") as out:  # savez adds ".npz" to a bare name; a file handle not
            np.savez(out, **arrays)

    @classmethod
    def load(cls, path: Path) -> SequenceModel:
        """A model saved by :meth:`save`; ``ValueError`` naming what is wrong otherwise."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # a cut-off copy
            raise ValueError(f"{path}: not a liverec sequence model ({exc})") from exc
        try:
            meta: dict[str, Any] = json.loads(str(arrays.pop("meta")))
            aids = arrays.pop("aids")
        except (KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a liverec sequence model (no meta or aids)") from exc
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: model format {meta.get('format')!r}, this liverec reads "
                             f"{FORMAT}")
        config = SequenceConfig.from_json(meta["config"])
        expected = network.init_params(config, len(aids), 0)
        shapes = {n: a.shape for n, a in arrays.items()}
        if shapes != {n: a.shape for n, a in expected.items()}:
            raise ValueError(f"{path}: weights do not match a {config.kind} of dim "
                             f"{config.dim} over {len(aids):,} items")
        return cls(config, Vocabulary(int(a) for a in aids), arrays)


def _top_indices(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """The indices of the ``k`` highest scores, highest first (ties: lower index first).

    Exact, and cheaper than one selection over the whole catalog: the ``k``-th highest score
    of every 16th item is at most the ``k``-th highest of all, so the items at or above it
    hold the top ``k``; only those few are sorted.
    """
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    sample = scores[::16]
    if len(sample) > 4 * k:
        floor = np.partition(sample, len(sample) - k)[len(sample) - k]
        pool = np.flatnonzero(scores >= floor)
    else:
        pool = np.arange(len(scores))
    return pool[np.lexsort((pool, -scores[pool]))[:k]]
