"""What the re-rankers read and how they learn (:mod:`online_models.candidates` builds what
they read, :mod:`online_models.rerank` learns)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RerankConfig:
    """What the re-ranker reads and how it learns."""

    neighbours: int = 20
    """Entries read from each matrix row."""
    depth: int = 30
    """Candidates per objective the model re-ranks (the prior's best); deeper ones follow in
    the prior's order."""
    history: int = 5
    """The most recent distinct items whose rows are read (10 gave the same figures on
    YOOCHOOSE at twice the cost: the 1/position weights make older rows count little)."""
    successor_items: int = 3
    """The most recent distinct items whose successors are read."""
    similar_sessions: int = 0
    """Sessions like the current one whose items become candidates and a feature
    (:mod:`online_models.similar_sessions`; 50 is a sensible number); 0: none. Off by default:
    it cost an eighth more CPU and gained nothing on the issue's 50,000-item set or on
    YOOCHOOSE (docs/quality.md, "Sessions like this one")."""
    similar_per_item: int = 50
    """Of each item, the sessions that most recently held it, where similar ones are looked
    for (100 cost a tenth more CPU and gained nothing on generated sessions)."""
    similar_max_sessions: int = 50_000
    """Sessions kept for it (the least recently active dropped): its memory bound."""
    similar_weight: float = 1.0
    """How much the similar sessions' items count in the priors, against one matrix row."""
    sequence_model: str | None = None
    """A sequence model file (``liverec train``) whose next-item picks become candidates and a
    feature (:mod:`online_models.sequence.source`, swapped when the file is); None: none."""
    sequence_picks: int = 20
    """The sequence model's best items read per session."""
    sequence_weight: float = 1.0
    """How much its first pick counts in the priors, against one matrix row (the ``r``-th
    counts ``weight / (1 + r)``)."""
    negatives: int = 8
    """Negatives per learned event, drawn uniformly from the shortlist. Not the model's own
    best wrong candidates ("hard" negatives): those sit at the top of the prior, so the
    sample would teach the model that a good prior rank predicts *no* click."""
    learning_rate: float = 0.005
    buy_learning_rate: float | None = None
    """The carts and orders models' rate (None: ``learning_rate``)."""
    reservoir_sessions: int = 100_000
    """Sessions whose earlier state is kept for the buying models (least recent dropped)."""
    snapshot_every: int = 10
    """Learned events of an objective between two snapshots of its model; 0: only when the
    owner calls :meth:`Reranker.swap` (the distributed runtime, which swaps on a clock). A
    snapshot serves only while it does better than the prior (:attr:`judge_window`)."""
    judge_window: int = 500
    """About how many recent learned events decide whether a snapshot or the prior serves
    (their judgements decay by ``1 − 1/judge_window`` per event)."""
    sample_percent: int = 100
    """Share of sessions (by a hash of the id, so every process picks the same ones) whose
    clicks are judged and learned from. Carts and orders are always: they are rare (a tenth
    of the events), so they cost little, and the buying models need every one of them."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.sample_percent <= 100:
            raise ValueError("sample_percent must be in 0..100")
        if self.judge_window < 1:
            raise ValueError("judge_window must be at least 1")
        if self.snapshot_every < 0:
            raise ValueError("snapshot_every must be 0 (never by itself) or more")
        if min(self.neighbours, self.history) < 1:
            raise ValueError("neighbours and history must be at least 1")
        if self.similar_sessions < 0 or min(self.similar_per_item,
                                            self.similar_max_sessions) < 1:
            raise ValueError("similar_sessions must be 0 (off) or more, and its bounds at least 1")
        if self.sequence_picks < 1 or self.sequence_weight < 0:
            raise ValueError("sequence_picks must be at least 1 and sequence_weight >= 0")
        if not 1 <= self.depth <= 1000:
            raise ValueError("depth must be in 1..1000")
