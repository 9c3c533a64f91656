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
from typing import Any, Protocol

import numpy as np

from online_models.sequence import network
from online_models.sequence.config import SequenceConfig
from online_models.sequence.data import Vocabulary, training_windows
from online_models.sequence.model import SequenceModel

#: Called after each epoch with (epoch, epochs, mean loss).
EpochHook = Callable[[int, int, float], None]


class MissingTrainingExtra(RuntimeError):
    """JAX or optax is not installed."""


def require_jax() -> tuple[Any, Any, Any]:
    """(jax, jax.numpy, optax), or :class:`MissingTrainingExtra` saying what to install."""
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError as exc:
        raise MissingTrainingExtra(
            "training a sequence model needs JAX and optax: pip install 'liverec[train]'"
        ) from exc
    return jax, jnp, optax


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
        from online_models.sequence.sqn import QObjective
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


class Objective(Protocol):
    """What a training step minimises, over state it keeps (weights, optimiser)."""

    def step(self, seq: np.ndarray, target: np.ndarray, kinds: np.ndarray, key: Any,
             rng: np.random.Generator) -> float: ...

    def params(self) -> dict[str, Any]: ...


def optimizer(config: SequenceConfig) -> Any:
    _, _, optax = require_jax()
    return (optax.adamw(config.learning_rate, weight_decay=config.weight_decay)
            if config.weight_decay else optax.adam(config.learning_rate))


def next_item_loss(h: Any, params: Any, target: Any, key: Any, negatives: int,
                   items: int) -> Any:
    """Softmax cross-entropy of each position's next item, masked where there is none."""
    jax, jnp, _ = require_jax()
    out, bias = network.output(params)
    mask = (target > 0).astype(jnp.float32)
    if negatives:
        sampled = jax.random.randint(key, (negatives,), 1, items + 1)
        positive = (h * jnp.take(out, target, axis=0)).sum(-1)
        logits = h @ jnp.take(out, sampled, axis=0).T
        if bias is not None:
            positive = positive + jnp.take(bias, target)
            logits = logits + jnp.take(bias, sampled)
        logits = jnp.where(sampled[None, None, :] == target[..., None], -1e9, logits)
        logz = jnp.logaddexp(positive, jax.nn.logsumexp(logits, axis=-1))
    else:
        logits = h @ out.T
        if bias is not None:
            logits = logits + bias
        logits = logits.at[..., 0].set(-1e9)
        logz = jax.nn.logsumexp(logits, axis=-1)
        positive = jnp.take_along_axis(logits, target[..., None], axis=-1)[..., 0]
    return ((logz - positive) * mask).sum() / jnp.maximum(mask.sum(), 1.0)


class Supervised:
    """GRU4Rec and SASRec: the next item's cross-entropy alone."""

    def __init__(self, config: SequenceConfig, items: int, params: dict[str, Any]) -> None:
        jax, jnp, optax = require_jax()
        self._params = params
        opt = optimizer(config)
        self._state = opt.init(params)
        negatives = config.negatives_for(items)

        def loss_fn(p: Any, seq: Any, target: Any, key: Any) -> Any:
            drop_key, neg_key = jax.random.split(key)
            h = network.hidden(p, seq, config, jnp,
                               dropout_fn(drop_key, config.dropout))
            return next_item_loss(h, p, target, neg_key, negatives, items)

        @jax.jit
        def step(p: Any, s: Any, seq: Any, target: Any, key: Any) -> tuple[Any, Any, Any]:
            loss, grads = jax.value_and_grad(loss_fn)(p, seq, target, key)
            updates, s = opt.update(grads, s, p)
            return optax.apply_updates(p, updates), s, loss

        self._step = step

    def step(self, seq: np.ndarray, target: np.ndarray, kinds: np.ndarray, key: Any,
             rng: np.random.Generator) -> float:
        self._params, self._state, loss = self._step(self._params, self._state, seq, target,
                                                     key)
        return float(loss)

    def params(self) -> dict[str, Any]:
        return self._params


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


def dropout_fn(key: Any, rate: float) -> network.Dropout | None:
    """A dropout that draws a fresh mask at each call (the calls happen while tracing)."""
    if not rate:
        return None
    jax, jnp, _ = require_jax()
    calls = [0]

    def drop(x: Any) -> Any:
        calls[0] += 1
        keep = jax.random.bernoulli(jax.random.fold_in(key, calls[0]), 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), 0.0)

    return drop


def jax_scores(model: SequenceModel, seq: np.ndarray) -> np.ndarray:
    """Every item's score after each row of ``seq``, computed by JAX from the model's weights:
    what the tests compare with the numpy serving path."""
    jax, jnp, _ = require_jax()
    params = {n: jnp.asarray(a) for n, a in model.params.items()}
    scores = network.scores(params, jnp.asarray(seq), model.config, jnp)
    scores = scores.at[:, 0].set(-jnp.inf)
    return np.asarray(jax.device_get(scores))
