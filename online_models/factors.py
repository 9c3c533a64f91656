"""Matrix factorisation over (session, item), learned online by River, read by session fold-in.

River's :class:`~river.reco.BiasedMF` learns a latent vector per user and per item from
``learn_one(user, item, y)``. Here a *user* is a session: each event is a positive (y = 1) and
``negatives`` items drawn from those seen so far are negatives (y = 0), so the model learns
which items share sessions without any explicit pair counting: a candidate source that
generalises where co-visitation has no row yet.

A new session has no latent vector, and without ``--online`` nothing may learn from it, so its
vector is *folded in* instead: the ridge solution that best explains its own recent items
(recency-weighted) against the item vectors as they stand. That is session state, like its
history, and costs one ``factors × factors`` solve.

Serving reads a snapshot (item ids, latent matrix, biases as numpy arrays) rebuilt every
``snapshot_every`` learned events: scoring every item is one matrix-vector product.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FactorsConfig:
    factors: int = 16
    negatives: int = 2
    learning_rate: float = 0.05
    l2: float = 0.001
    ridge: float = 0.1
    """Regularisation of the fold-in solve."""
    snapshot_every: int = 5000
    seed: int = 0


class SessionFactors:
    """BiasedMF over sessions and items; top items for a session's recent events.

    >>> mf = SessionFactors(FactorsConfig(factors=4, snapshot_every=1))
    >>> for session in range(50):
    ...     mf.learn(session, 1 + session % 2)
    ...     mf.learn(session, 3 + session % 2)
    >>> ranked = [aid for aid, _ in mf.top([1], 4)]
    >>> ranked[0], ranked.index(3) < ranked.index(4)  # 1 shares sessions with 3, never with 4
    (3, True)
    """

    def __init__(self, config: FactorsConfig | None = None) -> None:
        self.config = config = config or FactorsConfig()
        from river import optim, reco  # imported when used: see rerank.ObjectiveRanker

        self.model = reco.BiasedMF(
            n_factors=config.factors, seed=config.seed, l2_bias=config.l2,
            l2_latent=config.l2, latent_optimizer=optim.SGD(config.learning_rate),
            bias_optimizer=optim.SGD(config.learning_rate))
        self._items: list[int] = []
        self._known: set[int] = set()
        self._rng = random.Random(config.seed)
        self.learned = 0
        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, config.factors))
        self._bias = np.zeros(0)
        self._row: dict[int, int] = {}

    def learn(self, session: int, aid: int) -> None:
        """One event: its item is a positive for its session, a few seen items negatives."""
        if aid not in self._known:
            self._known.add(aid)
            self._items.append(aid)
        learn_one = self.model.learn_one
        learn_one(session, aid, 1.0)
        items = self._items
        for _ in range(self.config.negatives):
            other = items[self._rng.randrange(len(items))]
            if other != aid:
                learn_one(session, other, 0.0)
        self.learned += 1
        if self.learned % self.config.snapshot_every == 0:
            self.swap()

    def swap(self) -> None:
        """Serve the item vectors as they are now."""
        model = self.model
        ids = [aid for aid in self._items if aid in model.i_latents]
        self._ids = np.array(ids, dtype=np.int64)
        self._matrix = (np.array([model.i_latents[a] for a in ids]) if ids
                        else np.zeros((0, self.config.factors)))
        self._bias = np.array([model.i_biases.get(a, 0.0) for a in ids])
        self._row = {aid: i for i, aid in enumerate(ids)}

    def top(self, recent: Sequence[int], k: int = 20) -> list[tuple[int, float]]:
        """The ``k`` best items for a session whose items are ``recent`` (oldest first), by
        the folded-in session vector; the session's own items are not excluded."""
        rows = [self._row[a] for a in recent if a in self._row]
        if not rows or len(self._ids) == 0:
            return []
        q = self._matrix[rows]
        weights = np.linspace(0.1, 1.0, len(rows))  # recent items explain more
        target = (1.0 - self._bias[rows]) * weights
        gram = (q * weights[:, None]).T @ q + self.config.ridge * np.eye(q.shape[1])
        vector = np.linalg.solve(gram, q.T @ target)
        scores = self._matrix @ vector + self._bias
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.lexsort((self._ids[best], -scores[best]))]
        return [(int(self._ids[i]), float(scores[i])) for i in best]
