"""The closed-loop shoppers (simulation.shopper) and the A/B loop (simulation.loop)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.protocols import time_ordered
from producers.generator import GeneratorConfig, generate_sessions
from simulation.loop import Interval, SimulationConfig, run_shoppers, simulate
from simulation.shopper import CART_REWARD, CLICK_REWARD, ShopperModel, World
from stream.events import CARTS, CLICKS, ORDERS

WORLD = World(GeneratorConfig(sessions=0, items=3000, seed=7))


def oracle(shopper, size: int = 20) -> list[int]:  # type: ignore[no-untyped-def]
    """The items the shopper wants most, not the one it is looking at."""
    own = [WORLD.order[i] for c in set(shopper.interests)
           for i in range(WORLD.bounds[c], WORLD.bounds[c + 1])]
    best = sorted(own, key=lambda a: -shopper.relevance(a))
    return [a for a in best if not shopper.viewed or a != shopper.viewed[-1]][:size]


def play(world: World, index: int, lists) -> tuple[list, list[int | None]]:  # type: ignore[no-untyped-def]
    shopper = world.shopper(3, index, index, 0)
    events = list(shopper.step().events)
    clicked = []
    while not shopper.done:
        step = shopper.step(lists(shopper))
        events += step.events
        clicked.append(step.clicked)
    return events + shopper.finish(), clicked


def test_a_shopper_is_the_same_for_the_same_seed_and_index() -> None:
    a, b = WORLD.shopper(1, 5, 0, 0), WORLD.shopper(1, 5, 99, 10)
    assert (a.interests, a.wishes, a.steps_left, a.cart_chance) == (
        b.interests, b.wishes, b.steps_left, b.cart_chance)
    assert play(WORLD, 5, lambda s: None) == play(WORLD, 5, lambda s: None)
    others = {tuple(WORLD.shopper(1, i, 0, 0).wishes) for i in range(50)}
    assert len(others) > 30


def test_whatever_is_shown_the_profile_is_drawn_first_and_alike() -> None:
    """Common random numbers: two methods face the same interests, wishes and lengths."""
    plain, _ = play(WORLD, 11, lambda s: None)
    served, _ = play(WORLD, 11, oracle)
    assert sum(e.type == CLICKS for e in plain) == sum(e.type == CLICKS for e in served)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, WORLD.items - 1))
def test_relevance_is_one_at_a_wish_and_falls_with_distance(index: int, aid: int) -> None:
    shopper = WORLD.shopper(0, index, 0, 0)
    value = shopper.relevance(aid)
    assert 0.0 <= value <= 1.0
    category, rank = WORLD.category[aid], WORLD.rank[aid]
    if category not in shopper.interests:
        assert value == 0.0
        return
    distance = min(abs(rank - w) for c, w in zip(shopper.interests, shopper.wishes, strict=True)
                   if c == category)
    assert value == pytest.approx(math.exp(-distance / WORLD.model.relevance_width))
    wish = WORLD.order[WORLD.bounds[shopper.interests[0]] + shopper.wishes[0]]
    assert shopper.relevance(wish) == 1.0


def test_clicks_come_from_the_list_and_never_the_item_looked_at() -> None:
    for index in range(200):
        shopper = WORLD.shopper(2, index, index, 0)
        shopper.step()
        while not shopper.done:
            shown = oracle(shopper)
            shown.insert(0, shopper.viewed[-1])  # the item on screen, at the top
            step = shopper.step(shown[:20])
            if step.clicked is not None:
                assert step.clicked > 0
                assert step.events[0].aid == shown[step.clicked]
                assert step.reward == CLICK_REWARD + (CART_REWARD if step.carted else 0.0)
            else:
                assert step.reward == 0.0 and not step.carted


@pytest.mark.slow
def test_better_lists_get_more_clicks_carts_and_orders() -> None:
    """At the size users bring: 3,000 shoppers (over 45,000 events) per kind of list."""
    rng = random.Random(0)
    tallies = {}
    for name, lists in (("random", lambda s: rng.sample(range(WORLD.items), 20)),
                        ("none", lambda s: None), ("oracle", oracle)):
        counts: Counter[str] = Counter()
        for index in range(3000):
            events, clicked = play(WORLD, index, lists)
            counts["events"] += len(events)
            counts["clicks"] += sum(c is not None for c in clicked)
            counts["lists"] += len(clicked)
            counts["carts"] += sum(e.type == CARTS for e in events)
            counts["orders"] += sum(e.type == ORDERS for e in events)
        tallies[name] = counts
    assert tallies["none"]["events"] > 45_000
    assert tallies["none"]["clicks"] == 0
    assert tallies["random"]["clicks"] / tallies["random"]["lists"] < 0.02
    assert tallies["oracle"]["clicks"] / tallies["oracle"]["lists"] > 0.5
    for kind in ("carts", "orders"):
        assert tallies["oracle"][kind] > 1.3 * tallies["random"][kind], (kind, tallies)
        assert tallies["random"][kind] == pytest.approx(tallies["none"][kind], rel=0.1)


def test_unserved_shoppers_look_like_the_generators() -> None:
    """Without lists, the walk is the generator's: its lengths and its cart rate."""
    lengths, carts, events = [], 0, 0
    for index in range(4000):
        shopper = WORLD.shopper(0, index, index, 0)
        while not shopper.done:
            shopper.step()
        lengths.append(len(shopper.viewed))
        carts += len(shopper.carted)
        events += len(shopper.viewed)
    lengths.sort()
    assert lengths[len(lengths) // 2] in (5, 6, 7)
    generated = [e for _, s in generate_sessions(GeneratorConfig(sessions=4000, items=3000,
                                                                  seed=7)) for e in s]
    rate = sum(e.type == CARTS for e in generated) / sum(e.type != ORDERS for e in generated)
    assert carts / events == pytest.approx(rate, rel=0.3)


def test_the_click_chance_follows_the_documented_model() -> None:
    """One item of known relevance at position 0: clicks at click_scale x relevance."""
    model = ShopperModel(click_scale=0.5)
    world = World(GeneratorConfig(sessions=0, items=3000, seed=7), model)
    shown_relevance, clicks, n = 0.0, 0, 0
    for index in range(4000):
        shopper = world.shopper(9, index, index, 0)
        shopper.step()
        item = oracle(shopper, 1)
        if item[0] in shopper.seen:
            continue
        shown_relevance += shopper.relevance(item[0])
        clicks += shopper.step(item).clicked is not None
        n += 1
    expected = 0.5 * shown_relevance / n
    assert clicks / n == pytest.approx(expected, abs=4 * math.sqrt(expected / n))


def test_the_model_refuses_impossible_knobs() -> None:
    with pytest.raises(ValueError, match="click_scale"):
        ShopperModel(click_scale=1.5)
    with pytest.raises(ValueError, match="list_size"):
        ShopperModel(list_size=0)
    with pytest.raises(ValueError, match="replicates"):
        SimulationConfig(replicates=1)
    with pytest.raises(ValueError, match="rail"):
        SimulationConfig(rail="views")
    shopper = WORLD.shopper(0, 0, 0, 0)
    while not shopper.done:
        shopper.step()
    with pytest.raises(RuntimeError, match="left"):
        shopper.step()


def test_student_t_intervals() -> None:
    interval = Interval.of([1.0, 2.0, 3.0])
    assert interval.mean == 2.0
    assert interval.high - 2.0 == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
    assert interval.overlaps(Interval(2.5, 2.4, 10.0))
    assert not interval.overlaps(Interval(10.0, 9.0, 11.0))


def test_a_method_serves_the_shoppers_and_learns_from_them() -> None:
    from evaluation.methods import make_method

    config = GeneratorConfig(sessions=500, items=1000, seed=1)
    world = World(config)
    method = make_method("covis")
    method.train(time_ordered(e for _, s in generate_sessions(config) for e in s))
    tally = run_shoppers(method, world, 1, range(50), 500, 10**13)
    assert tally.sessions == 50 and tally.lists > 0
    assert 0 < tally.list_clicks <= tally.lists
    assert tally.carts >= tally.orders >= 0
    assert method.pipeline.sessions.get(500 + 49) is not None  # it learned the last one


@pytest.mark.slow
def test_simulate_ranks_co_visitation_above_popular_and_is_deterministic() -> None:
    config = SimulationConfig(shoppers=150, replicates=3, history=1500, items=1500, seed=2)
    first = simulate(["popular", "covis"], config, progress=lambda _: None, jobs=1)
    again = simulate(["popular", "covis"], config, progress=lambda _: None, jobs=2)
    for name in first:
        assert [t.rates() for t in first[name].tallies] == [
            t.rates() for t in again[name].tallies]
    popular = first["popular"].intervals["clicks_per_1000_lists"]
    covis = first["covis"].intervals["clicks_per_1000_lists"]
    assert covis.low > popular.high
    assert first["covis"].versus["reward_per_session"].low > 0
