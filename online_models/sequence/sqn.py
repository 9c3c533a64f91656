"""SQN with a conservative Q-learning term: the next-item head and a Q head on one network.

Xin et al. (SIGIR 2020, "Self-Supervised Reinforcement Learning for Recommender Systems") put
a Q-learning head beside the next-item (cross-entropy) head of a sequence model. The state
``s_t`` is the network's state after the session's first ``t`` items, the action the item
that came next, the reward by that event's type (a click 0.2, a purchase 1.0 by default).
Both heads train together; the next-item head ranks when serving.

* **Double Q-learning, as in the paper**: two copies of the whole network. Each step one copy,
  drawn at random, learns; the other gives the target's value:
  ``y = r + γ · Q_other(s_{t+1}, argmax_a Q_learner(s_{t+1}, a))``, and the loss is
  ``(Q_learner(s_t, a_t) − y)²``. The last step of a window has no next state (its value is
  0): a session's end, or where a long session was cut.
* **Conservative Q-learning** (Kumar et al., 2020) for learning from logged data only: the
  term ``α · (logsumexp_a Q(s_t, a) − Q(s_t, a_t))`` pushes down the Q-values of actions the
  log never took, so the Q head does not trust items it has no evidence for.

With sampled negatives (large catalogs) the logsumexp and the argmax run over the batch's
drawn items and the logged one, as the cross-entropy does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from online_models.sequence import network
from online_models.sequence.config import SequenceConfig
from online_models.sequence.losses import dropout_fn, next_item_loss, optimizer, require_jax

_NEG = -1e9


class QObjective:
    """The two copies, their optimisers, and one step of both heads' losses."""

    def __init__(self, config: SequenceConfig, items: int, params: dict[str, Any]) -> None:
        jax, jnp, optax = require_jax()
        second = {n: jnp.asarray(a) for n, a in
                  network.init_params(config, items, config.seed + 1).items()}
        opt = optimizer(config)
        self._copies = [params, second]
        self._states = [opt.init(params), opt.init(second)]
        negatives = config.negatives_for(items)
        rewards = jnp.asarray([config.reward_click, config.reward_buy, config.reward_buy],
                              dtype=jnp.float32)

        def q_values(p: Any, h: Any, actions: Any | None) -> Any:
            """Q of every item (or of ``actions``) at every position."""
            if actions is None:
                q = h @ p["q"].T + p["q.b"]
                return q.at[..., 0].set(_NEG)
            return h @ jnp.take(p["q"], actions, axis=0).T + jnp.take(p["q.b"], actions)

        def loss_fn(p: Any, other: Any, seq: Any, target: Any, kinds: Any, key: Any) -> Any:
            drop_key, neg_key = jax.random.split(key)
            h = network.hidden(p, seq, config, jnp, dropout_fn(drop_key, config.dropout))
            supervised = next_item_loss(h, p, target, neg_key, negatives, items)
            mask = (target > 0).astype(jnp.float32)
            sampled = (jax.random.randint(neg_key, (negatives,), 1, items + 1)
                       if negatives else None)
            q = q_values(p, h, sampled)
            taken = (h * jnp.take(p["q"], target, axis=0)).sum(-1) + jnp.take(p["q.b"], target)
            if sampled is not None:
                q = jnp.where(sampled[None, None, :] == target[..., None], _NEG, q)
                logz = jnp.logaddexp(taken, jax.nn.logsumexp(q, axis=-1))
            else:
                logz = jax.nn.logsumexp(q, axis=-1)
            # The next state's value: chosen by the learner, valued by the other copy.
            h_other = jax.lax.stop_gradient(network.hidden(other, seq, config, jnp))
            q_next = jax.lax.stop_gradient(q[:, 1:])
            best = jnp.argmax(q_next, axis=-1)
            if sampled is not None:
                best = jnp.take(sampled, best)
            value = (h_other[:, 1:] * jnp.take(other["q"], best, axis=0)).sum(-1) \
                + jnp.take(other["q.b"], best)
            value = jnp.concatenate([value, jnp.zeros_like(value[:, :1])], axis=1)
            y = jax.lax.stop_gradient(jnp.take(rewards, kinds) + config.discount * value)
            count = jnp.maximum(mask.sum(), 1.0)
            td = (((taken - y) ** 2) * mask).sum() / count
            conservative = ((logz - taken) * mask).sum() / count
            return supervised + td + config.cql_weight * conservative

        @jax.jit
        def step(p: Any, s: Any, other: Any, seq: Any, target: Any, kinds: Any, key: Any
                 ) -> tuple[Any, Any, Any]:
            loss, grads = jax.value_and_grad(loss_fn)(p, other, seq, target, kinds, key)
            updates, s = opt.update(grads, s, p)
            return optax.apply_updates(p, updates), s, loss

        self._step = step

    def step(self, seq: np.ndarray, target: np.ndarray, kinds: np.ndarray, key: Any,
             rng: np.random.Generator) -> float:
        learner = int(rng.integers(2))  # seeded: which copy learns this step
        copies, states = self._copies, self._states
        copies[learner], states[learner], loss = self._step(
            copies[learner], states[learner], copies[1 - learner], seq, target, kinds, key)
        return float(loss)

    def params(self) -> dict[str, Any]:
        """The first copy: its next-item head serves."""
        return self._copies[0]
