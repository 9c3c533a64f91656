"""What a co-visitation cell is made of: the definition's parameters and its two weights (the
clicks time weight with its epochs, the carts_orders type weight). The incremental matrices
(:mod:`online_models.covisitation`) and the batch computation
(:mod:`online_models.covisitation_batch`) both use them, which is half of why they agree bit
for bit; ``docs/covisitation.md`` states the definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS

#: carts_orders weight by the type of the occurrence's target event (clicks, carts, orders).
TYPE_WEIGHTS: Final = (1, 6, 3)
#: clicks weights are fixed point: 1.0 == 1024.
WEIGHT_ONE: Final = 1024
#: Default epoch length in half-lives (:attr:`CovisConfig.epoch_half_lives`).
EPOCH_HALF_LIVES: Final = 8


@dataclass(frozen=True)
class CovisConfig:
    """The parameters of the definition. Changing one changes every matrix value."""

    window: int = 30
    """Pairs are at most this many events apart (within the family's sequence)."""
    max_gap_ms: int = DAY_MS
    """``all`` family: pair and run gap, 24 h."""
    buy_max_gap_ms: int = 14 * DAY_MS
    """``buys`` family: pair and run gap, 14 days."""
    half_life_ms: int = 14 * DAY_MS
    """clicks time weight doubles every half-life: 14 days matches the public recipe's 1→4 over
    OTTO's four weeks."""
    epoch_half_lives: int = EPOCH_HALF_LIVES
    """An epoch lasts this many half-lives (112 days by default). The matrices hold the
    current epoch's and the previous one's runs, so a pair nobody repeats is forgotten 1 to
    2 epochs after it last occurred; entering an epoch shifts the clicks weights right by
    this many bits (renormalisation)."""
    max_neighbors: int = 0
    """Serving bound: a row holds at most ``3 × max_neighbors`` entries; when it overflows it
    keeps the ``max_neighbors`` heaviest of each matrix (at most ``2 × max_neighbors``), so at
    least ``max_neighbors`` insertions pass between two prunings. 0 = unbounded (exact)."""

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if min(self.max_gap_ms, self.buy_max_gap_ms, self.half_life_ms) <= 0:
            raise ValueError("gaps and half-life must be positive")
        if not 1 <= self.epoch_half_lives <= 40:
            raise ValueError("epoch_half_lives must be in 1..40")
        if self.max_neighbors < 0:
            raise ValueError("max_neighbors must be >= 0")


class TimeWeight:
    """Forward-decay clicks weight with epoch renormalisation (see the module docstring)."""

    __slots__ = ("landmark", "half_life", "epoch_ms", "shift")

    def __init__(self, landmark: int, half_life_ms: int, epoch_half_lives: int) -> None:
        self.landmark = landmark
        self.half_life = half_life_ms
        self.epoch_ms = half_life_ms * epoch_half_lives
        self.shift = epoch_half_lives

    def epoch(self, ts: int) -> int:
        """Epoch index of a timestamp (never negative)."""
        return max(0, (ts - self.landmark) // self.epoch_ms)

    def weight(self, ts: int, epoch: int) -> int:
        """Weight of time ``ts`` in the scale of ``epoch``, at least 1."""
        exponent = (ts - self.landmark - epoch * self.epoch_ms) / self.half_life
        return max(1, round(WEIGHT_ONE * 2.0**exponent))
