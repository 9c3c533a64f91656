"""The forward pass of GRU4Rec and SASRec, written once against an array module ``xp``.

Training runs it with ``jax.numpy`` (and dropout), serving with ``numpy``: one definition, so
what serves is what was trained (a test compares the two on trained weights). Only
operations both modules share are used, with the same float32 arithmetic.

Inputs are left-padded index rows ``(batch, length)``; the hidden state at each position
summarises the session up to it, and an item's score is that state's dot product with the
item's output embedding (plus a bias for GRU4Rec).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from online_models.sequence.config import SequenceConfig

Params = Mapping[str, Any]
"""Weights by name: numpy arrays when serving, JAX arrays when training."""
Dropout = Callable[[Any], Any]

_NEG = -1e9  # a masked attention logit: exp() of it is 0 in float32


def init_params(config: SequenceConfig, items: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded initial weights (numpy float32) for ``items`` items plus padding index 0."""
    rng = np.random.default_rng(seed)
    d = config.dim

    def normal(*shape: int, scale: float | None = None) -> np.ndarray:
        std = scale if scale is not None else 1.0 / math.sqrt(shape[0])
        return (rng.standard_normal(shape) * std).astype(np.float32)

    zeros = lambda *shape: np.zeros(shape, dtype=np.float32)  # noqa: E731
    ones = lambda *shape: np.ones(shape, dtype=np.float32)  # noqa: E731
    item = normal(items + 1, d, scale=1.0 / math.sqrt(d))
    item[0] = 0.0
    p: dict[str, np.ndarray] = {"item": item}
    if config.kind == "sqn":  # the Q head beside the backbone's next-item head
        p.update({"q": normal(items + 1, d, scale=1.0 / math.sqrt(d)), "q.b": zeros(items + 1)})
    if config.network == "gru4rec":
        p.update({"gru.w": normal(d, 3 * d), "gru.u": normal(d, 3 * d), "gru.b": zeros(3 * d),
                  "out": normal(items + 1, d, scale=1.0 / math.sqrt(d)),
                  "out.b": zeros(items + 1)})
        return p
    p.update({"pos": normal(config.max_len, d, scale=1.0 / math.sqrt(d)),
              "ln.g": ones(d), "ln.b": zeros(d)})
    for b in range(config.blocks):
        p.update({f"b{b}.ln1.g": ones(d), f"b{b}.ln1.b": zeros(d),
                  f"b{b}.q": normal(d, d), f"b{b}.k": normal(d, d), f"b{b}.v": normal(d, d),
                  f"b{b}.qkv.b": zeros(3 * d),
                  f"b{b}.ln2.g": ones(d), f"b{b}.ln2.b": zeros(d),
                  f"b{b}.ff1": normal(d, d), f"b{b}.ff1.b": zeros(d),
                  f"b{b}.ff2": normal(d, d), f"b{b}.ff2.b": zeros(d)})
    return p


def hidden(params: Params, seq: Any, config: SequenceConfig, xp: Any,
           dropout: Dropout | None = None) -> Any:
    """The hidden state at every position, ``(batch, length, dim)``."""
    if config.network == "gru4rec":
        return _gru(params, seq, xp, dropout)
    return _sasrec(params, seq, config, xp, dropout)


def _sigmoid(x: Any, xp: Any) -> Any:
    return 1.0 / (1.0 + xp.exp(-x))


def _gru(params: Params, seq: Any, xp: Any, dropout: Dropout | None) -> Any:
    x = xp.take(params["item"], seq, axis=0)
    if dropout is not None:
        x = dropout(x)
    d = params["gru.u"].shape[0]
    gates_x = x @ params["gru.w"] + params["gru.b"]  # (B, L, 3d): the input's part, at once
    u = params["gru.u"]
    h = xp.zeros((seq.shape[0], d), dtype=xp.float32)
    states = []
    for t in range(seq.shape[1]):
        gx = gates_x[:, t]
        gh = h @ u
        z = _sigmoid(gx[:, :d] + gh[:, :d], xp)
        r = _sigmoid(gx[:, d:2 * d] + gh[:, d:2 * d], xp)
        n = xp.tanh(gx[:, 2 * d:] + r * gh[:, 2 * d:])
        step = (1.0 - z) * n + z * h
        h = xp.where((seq[:, t] > 0)[:, None], step, h)  # padding leaves the state alone
        states.append(h)
    return xp.stack(states, axis=1)


def _layer_norm(x: Any, g: Any, b: Any, xp: Any) -> Any:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / xp.sqrt(var + 1e-6) * g + b


def _sasrec(params: Params, seq: Any, config: SequenceConfig, xp: Any,
            dropout: Dropout | None) -> Any:
    batch, length = seq.shape
    d, heads = config.dim, config.heads
    size = d // heads
    keep = (seq > 0)[..., None].astype(xp.float32)
    x = xp.take(params["item"], seq, axis=0) * math.sqrt(d) + params["pos"][-length:]
    if dropout is not None:
        x = dropout(x)
    x = x * keep
    causal = xp.tril(xp.ones((length, length), dtype=bool))
    allowed = causal[None, None] & (seq > 0)[:, None, None, :]  # (B, 1, Lq, Lk)

    def split(t: Any) -> Any:  # (B, L, d) → (B, heads, L, size)
        return t.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

    for b in range(config.blocks):
        p = f"b{b}."
        query = _layer_norm(x, params[p + "ln1.g"], params[p + "ln1.b"], xp)
        bias = params[p + "qkv.b"]
        q = split(query @ params[p + "q"] + bias[:d])
        k = split(x @ params[p + "k"] + bias[d:2 * d])
        v = split(x @ params[p + "v"] + bias[2 * d:])
        logits = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(size)
        logits = xp.where(allowed, logits, _NEG)
        logits = logits - logits.max(axis=-1, keepdims=True)
        weights = xp.exp(logits)
        weights = weights / weights.sum(axis=-1, keepdims=True)
        if dropout is not None:
            weights = dropout(weights)
        attended = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, d)
        x = query + attended  # the residual of the normalised query, as SASRec has it
        y = _layer_norm(x, params[p + "ln2.g"], params[p + "ln2.b"], xp)
        y = xp.maximum(y @ params[p + "ff1"] + params[p + "ff1.b"], 0.0)
        if dropout is not None:
            y = dropout(y)
        x = (x + y @ params[p + "ff2"] + params[p + "ff2.b"]) * keep
    return _layer_norm(x, params["ln.g"], params["ln.b"], xp)


def scores(params: Params, seq: Any, config: SequenceConfig, xp: Any) -> Any:
    """Every item's next-item score after each row of ``seq`` (``(batch, items + 1)``;
    column 0, padding, is left for the caller to mask)."""
    h = hidden(params, seq, config, xp)[:, -1]
    out, bias = output(params)
    return h @ out.T if bias is None else h @ out.T + bias


def output(params: Params) -> tuple[Any, Any | None]:
    """The output item embeddings and bias an item's score reads (``sqn``: its next-item
    head, which ranks, as the paper serves it)."""
    if "out" in params:
        return params["out"], params["out.b"]
    return params["item"], None
