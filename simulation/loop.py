"""``liverec simulate``: an A/B test in simulation, every method facing the same shoppers.

Each method first learns from generated history (the generator's sessions over the shoppers'
own catalog, in time order), exactly as ``liverec evaluate`` trains it. Then, for each
replicate, a copy of the trained method serves ``shoppers`` simulated shoppers one after
another: after every event of a shopper the method learns it (test-then-train, as live) and
the shopper sees the method's list and reacts (:mod:`simulation.shopper`). The figures are
rates per replicate, summarised by their mean and a Student-t 95 % interval over replicates.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from scipy import stats

from evaluation.evaluate import run_each
from evaluation.methods import Method, make_method
from evaluation.protocols import time_ordered
from producers.generator import GeneratorConfig, generate_sessions
from simulation.shopper import ShopperModel, World
from stream.events import Event

__all__ = ["FIGURES", "Interval", "MethodResult", "SimulationConfig", "Tally", "format_table",
           "run_shoppers", "simulate"]

RAILS = ("clicks", "carts", "orders")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SimulationConfig:
    """What ``liverec simulate`` runs (its flags)."""

    shoppers: int = 1000
    replicates: int = 5
    seed: int = 0
    #: Generated sessions every method learns from before the shoppers arrive.
    history: int = 20_000
    items: int = 5_000
    #: Which of a method's three lists the shoppers see.
    rail: str = "clicks"
    model: ShopperModel = field(default_factory=ShopperModel)

    def __post_init__(self) -> None:
        if self.shoppers < 1 or self.replicates < 2:
            raise ValueError("need shoppers >= 1 and replicates >= 2 (an interval needs two)")
        if self.history < 0 or self.items < 1:
            raise ValueError("need history >= 0 and items >= 1")
        if self.rail not in RAILS:
            raise ValueError(f"rail must be one of {', '.join(RAILS)}, got {self.rail!r}")

    def generator(self) -> GeneratorConfig:
        return GeneratorConfig(sessions=self.history, items=self.items, seed=self.seed)


@dataclass
class Tally:
    """What the shoppers of one replicate did."""

    sessions: int = 0
    lists: int = 0
    list_clicks: int = 0
    events: int = 0
    carts: int = 0
    orders: int = 0
    reward: float = 0.0
    seconds: float = 0.0

    def rates(self) -> dict[str, float]:
        return {"clicks_per_1000_lists": 1000 * self.list_clicks / max(1, self.lists),
                "carts_per_1000_sessions": 1000 * self.carts / max(1, self.sessions),
                "orders_per_1000_sessions": 1000 * self.orders / max(1, self.sessions),
                "reward_per_session": self.reward / max(1, self.sessions)}


#: The figures, in the order they are printed, with their column titles.
FIGURES = {"clicks_per_1000_lists": "list clicks / 1,000 lists",
           "carts_per_1000_sessions": "carts / 1,000 sessions",
           "orders_per_1000_sessions": "orders / 1,000 sessions",
           "reward_per_session": "reward / session"}


@dataclass
class MethodResult:
    """A method's figures: per figure, the interval over replicates and (for all but the
    first method) the interval of its paired difference from the first."""

    intervals: dict[str, Interval]
    tallies: list[Tally]
    cpu_seconds: float
    versus: dict[str, Interval] = field(default_factory=dict)


@dataclass(frozen=True)
class Interval:
    """A mean over replicates and its two-sided 95 % Student-t interval."""

    mean: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Interval:
        n = len(values)
        mean = sum(values) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        return cls(mean, mean - half, mean + half)

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high


def run_shoppers(method: Method, world: World, seed: int, indices: range, first_session: int,
                 start_ms: int, rail: str = "clicks") -> Tally:
    """Shoppers ``indices`` of ``seed``, one after another, served by ``method``."""
    tally = Tally()
    started = time.process_time()
    clock = start_ms
    for index in indices:
        shopper = world.shopper(seed, index, first_session + index, clock)
        step = shopper.step()
        method.feed(step.events, learn=True)
        while not shopper.done:
            shown = getattr(method.lists(shopper.session), rail)
            step = shopper.step(shown)
            method.feed(step.events, learn=True)
            tally.lists += 1
            tally.list_clicks += step.clicked is not None
        orders = shopper.finish()
        method.feed(orders, learn=True)
        tally.sessions += 1
        tally.events += len(shopper.viewed) + len(shopper.carted) + len(orders)
        tally.carts += len(shopper.carted)
        tally.orders += len(orders)
        tally.reward += shopper.rewards
        clock = shopper.ts + 60_000
    tally.seconds = time.process_time() - started
    return tally


def simulate(names: Sequence[str], config: SimulationConfig, progress: Progress = print,
             jobs: int = 1, make: Callable[[str], Method] = make_method
             ) -> dict[str, MethodResult]:
    """Every method trained on the same history, then each replicate's shoppers; per method,
    the intervals of :data:`FIGURES`, the replicates' tallies and the CPU seconds."""
    world = World(config.generator(), config.model)
    started = time.perf_counter()
    history: list[Event] = time_ordered(
        e for _, events in generate_sessions(config.generator()) for e in events)
    progress(f"history: {config.history:,} generated sessions, {len(history):,} events over "
             f"{config.items:,} items ({time.perf_counter() - started:.1f} s)")
    start_ms = (history[-1].ts if history else config.generator().start_ms) + 3_600_000

    def run(name: str) -> MethodResult:
        began = time.process_time()
        trained = make(name)
        trained.train(history)
        progress(f"  {name}: trained in {time.process_time() - began:.1f} s CPU")
        tallies = []
        for replicate in range(config.replicates):
            method = copy.deepcopy(trained)
            first = replicate * config.shoppers
            tally = run_shoppers(method, world, config.seed,
                                 range(first, first + config.shoppers), config.history,
                                 start_ms, config.rail)
            tallies.append(tally)
            progress(f"  {name}: replicate {replicate + 1}/{config.replicates}, "
                     f"{tally.events:,} events, {tally.seconds:.1f} s CPU")
        per = [t.rates() for t in tallies]
        return MethodResult({f: Interval.of([p[f] for p in per]) for f in FIGURES}, tallies,
                            time.process_time() - began)

    results = run_each(list(names), run, jobs)
    # Replicate r shows every method the same shoppers, so differences are paired: the
    # shoppers' own spread (how much each carts, how long each stays) cancels out.
    base = results[names[0]].tallies
    for name in names[1:]:
        pairs = list(zip(results[name].tallies, base, strict=True))
        results[name].versus = {f: Interval.of([t.rates()[f] - b.rates()[f] for t, b in pairs])
                                for f in FIGURES}
    return results


def _cell(figure: str, interval: Interval, sign: str = "") -> str:
    d = 3 if figure == "reward_per_session" else 1
    return (f"{interval.mean:{sign}.{d}f} [{interval.low:{sign}.{d}f}, "
            f"{interval.high:{sign}.{d}f}]")


def format_table(results: dict[str, MethodResult]) -> str:
    """Markdown: per method, each figure's mean and 95 % interval [low, high] over
    replicates; then each method's paired difference from the first."""
    head = "| method | " + " | ".join(FIGURES.values()) + " | CPU s |"
    lines = [head, "|" + "---|" * (len(FIGURES) + 2)]
    for name, result in results.items():
        cells = [_cell(f, result.intervals[f]) for f in FIGURES]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {result.cpu_seconds:.0f} |")
    names = list(results)
    if len(names) > 1:
        lines += ["", f"Paired differences from {names[0]} (same shoppers, 95 % intervals):",
                  "", "| method | " + " | ".join(FIGURES.values()) + " |",
                  "|" + "---|" * (len(FIGURES) + 1)]
        for name in names[1:]:
            versus = results[name].versus
            lines.append(f"| {name} − {names[0]} | "
                         + " | ".join(_cell(f, versus[f], "+") for f in FIGURES) + " |")
    return "\n".join(lines)
