"""What training a sequence model minimises: the next item's cross-entropy (GRU4Rec, SASRec)
and the pieces every objective shares (the optimiser, dropout, JAX itself).

:mod:`online_models.sequence.train` runs an objective over the windows; SQN's
(:mod:`online_models.sequence.sqn`) adds a Q-learning head to this one.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from online_models.sequence import network
from online_models.sequence.config import SequenceConfig


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
