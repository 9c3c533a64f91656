"""Training a sequence model on the CPU with JAX and optax (the ``train`` extra).

Every position of every training window predicts the next item (the SASRec and GRU4Rec
objective over sessions): softmax cross-entropy of the target against every item, or with
``negatives`` against that many items drawn uniformly per batch, shared by its rows, and
never the target itself. Adam (AdamW with ``weight_decay``), dropout while training only.

Seeded: the initial weights, the batch order, dropout and the drawn negatives all come from
``config.seed``, so the same data and config give the same weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from online_models.sequence import network
from online_models.sequence.config import SequenceConfig
from online_models.sequence.data import Vocabulary, training_windows
from online_models.sequence.losses import (
    MissingTrainingExtra,
    Objective,
    Supervised,
    require_jax,
)
from online_models.sequence.model import SequenceModel
from online_models.sequence.sqn import QObjective

__all__ = ["EpochHook", "MissingTrainingExtra", "TrainReport", "jax_scores", "train"]

#: Called after each epoch with (epoch, epochs, mean loss).
EpochHook = Callable[[int, int, float], None]


@dataclass
class TrainReport:
    epochs: int
    windows: int
    items: int
    losses: list[float]
    seconds: float


def train(sessions: Iterable[Sequence[int]], config: SequenceConfig,
          on_epoch: EpochHook | None = None,
          types: Iterable[Sequence[int]] | None = None) -> tuple[SequenceModel, TrainReport]:
    """Train on sessions (each its aids, oldest first; ``types`` their event types, which
    ``sqn``'s rewards read) and return the serving model."""
    jax, jnp, _ = require_jax()
    started = time.perf_counter()
    sessions = [list(s) for s in sessions]
    kinds_of = [list(t) for t in types] if types is not None else None
    vocabulary = Vocabulary(a for s in sessions for a in s)
    if not len(vocabulary):
        raise ValueError("no items to train on")
    encoded = [vocabulary.encode(s) for s in sessions]  # every aid is known: none dropped
    inputs, targets, kinds = training_windows(encoded, config.max_len, kinds_of)
    if not len(inputs):
        raise ValueError("no session has two events: nothing to predict")
    items = len(vocabulary)
    params = {n: jnp.asarray(a) for n, a in
              network.init_params(config, items, config.seed).items()}
    objective: Objective
    if config.kind == "sqn":
        objective = QObjective(config, items, params)
    else:
        objective = Supervised(config, items, params)

    rng = np.random.default_rng(config.seed)
    key = jax.random.PRNGKey(config.seed)
    plan = _batches(inputs, config)
    pad = len(inputs)  # an all-padding row that fills up the last batch of each length
    inputs = np.vstack([inputs, np.zeros((1, config.max_len), inputs.dtype)])
    targets = np.vstack([targets, np.zeros((1, config.max_len), targets.dtype)])
    kinds = np.vstack([kinds, np.zeros((1, config.max_len), kinds.dtype)])
    losses: list[float] = []
    for epoch in range(1, config.epochs + 1):
        total = 0.0
        count = 0
        for length, rows in _epoch(plan, config.batch_size, rng, pad):
            key, sub = jax.random.split(key)
            total += objective.step(inputs[rows, -length:], targets[rows, -length:],
                                    kinds[rows, -length:], sub, rng)
            count += 1
        losses.append(total / max(1, count))
        if on_epoch is not None:
            on_epoch(epoch, config.epochs, losses[-1])
    model = SequenceModel(config, vocabulary,
                          {n: np.asarray(a) for n, a in objective.params().items()})
    return model, TrainReport(config.epochs, pad, items, losses,
                              time.perf_counter() - started)


def _batches(inputs: np.ndarray, config: SequenceConfig) -> dict[int, np.ndarray]:
    """Windows by the padded length they need: 4, 8, 16, ... up to ``max_len``. Short
    sessions then train on short arrays (a few compiled shapes), and since padding is
    masked, a window's loss is the same at any padded length."""
    used = (inputs > 0).sum(axis=1)
    lengths = sorted({min(config.max_len, 4 << i) for i in range(16)})
    plan: dict[int, np.ndarray] = {}
    lower = 0
    for length in lengths:
        rows = np.flatnonzero((used > lower) & (used <= length))
        if len(rows):
            plan[length] = rows
        lower = length
    return plan


def _epoch(plan: dict[int, np.ndarray], batch: int, rng: np.random.Generator, pad: int
           ) -> list[tuple[int, np.ndarray]]:
    """One epoch's batches: rows shuffled within each length, batches in a shuffled order,
    every batch ``batch`` rows (the last of a length filled up with row ``pad``, all
    padding, which adds nothing to the loss)."""
    batches: list[tuple[int, np.ndarray]] = []
    for length, rows in plan.items():
        rows = rows[rng.permutation(len(rows))]
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            if len(chunk) < batch:  # one shape per length: compiled once
                chunk = np.concatenate([chunk, np.full(batch - len(chunk), pad)])
            batches.append((length, chunk))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def jax_scores(model: SequenceModel, seq: np.ndarray) -> np.ndarray:
    """Every item's score after each row of ``seq``, computed by JAX from the model's weights:
    what the tests compare with the numpy serving path."""
    jax, jnp, _ = require_jax()
    params = {n: jnp.asarray(a) for n, a in model.params.items()}
    scores = network.scores(params, jnp.asarray(seq), model.config, jnp)
    scores = scores.at[:, 0].set(-jnp.inf)
    return np.asarray(jax.device_get(scores))
