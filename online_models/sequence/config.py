"""What a sequence model is (its kind and sizes) and how it trains."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

MODEL_KINDS: Final = ("gru4rec", "sasrec", "sqn")
BACKBONES: Final = ("gru4rec", "sasrec")
FULL_SOFTMAX_ITEMS: Final = 20_000


@dataclass(frozen=True)
class SequenceConfig:
    """A sequence model's shape and its training settings.

    The defaults suit session data on a 2-core CPU: small embeddings, a window as long as
    the one every method sees (the session's last 30 events).
    """

    kind: str = "sasrec"
    """``gru4rec`` (Hidasi et al.: a GRU over the session, its state scored against output
    item embeddings), ``sasrec`` (Kang & McAuley: causal self-attention blocks over item and
    position embeddings, scored against the same item embeddings) or ``sqn`` (Xin et al.: a
    ``backbone`` with a Q-learning head beside its next-item head, rewards per event type,
    and a conservative Q-learning term; :mod:`online_models.sequence.sqn`)."""
    backbone: str = "sasrec"
    """``sqn``: the sequence model under its two heads."""
    dim: int = 64
    max_len: int = 30
    """Events a model reads: the session's most recent ones."""
    blocks: int = 2
    """``sasrec``: self-attention blocks."""
    heads: int = 1
    """``sasrec``: attention heads (``dim`` must divide by it)."""
    dropout: float = 0.2
    """Training only: on embeddings and inside each block."""
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 0.002
    weight_decay: float = 0.0
    negatives: int | None = None
    """Items the loss contrasts each target with: 0 for the full softmax over every item, else
    that many drawn uniformly per batch and shared by its rows; None: the full softmax up to
    :data:`FULL_SOFTMAX_ITEMS` items, 1,024 drawn above (its cost grows with the catalog)."""
    seed: int = 0
    reward_click: float = 0.2
    """``sqn``: the reward of a clicked item (the paper's default)."""
    reward_buy: float = 1.0
    """``sqn``: the reward of a carted or ordered item (the paper's purchase reward)."""
    discount: float = 0.5
    """``sqn``: γ of the Q-learning target (the paper's 0.5)."""
    cql_weight: float = 1.0
    """``sqn``: the conservative Q-learning term's weight (0: plain SQN)."""

    @property
    def network(self) -> str:
        """The sequence network that computes the states: the kind, or ``sqn``'s backbone."""
        return self.backbone if self.kind == "sqn" else self.kind

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MODEL_KINDS)}, not {self.kind!r}")
        if min(self.dim, self.max_len, self.blocks, self.heads, self.epochs,
               self.batch_size) < 1:
            raise ValueError("dim, max_len, blocks, heads, epochs and batch_size must be >= 1")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, not "
                             f"{self.backbone!r}")
        if not 0.0 <= self.discount < 1.0 or self.cql_weight < 0:
            raise ValueError("discount must be in [0, 1) and cql_weight >= 0")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.learning_rate <= 0 or self.weight_decay < 0 or (self.negatives or 0) < 0:
            raise ValueError("learning_rate must be > 0, weight_decay and negatives >= 0")

    def negatives_for(self, items: int) -> int:
        """Drawn negatives for a catalog of ``items`` (0: the full softmax)."""
        if self.negatives is None:
            return 0 if items <= FULL_SOFTMAX_ITEMS else 1024
        return min(self.negatives, items)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SequenceConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})
