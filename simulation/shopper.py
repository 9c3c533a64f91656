"""Simulated shoppers who see a recommender's list after each of their events and react to it.

The shoppers come from the generator's latent model (:mod:`producers.generator`): the same
catalog of categories ordered by popularity, the same interests (a first category, extra ones
often its complement), the same walk over neighbouring items with restarts, look-backs and
strays, the same session lengths and cart propensities. What the generator does not have, and a
closed loop needs, is a *true relevance* of every item to a shopper, and a reaction to what is
shown. ``docs/simulation.md`` states the model; in short:

* each interest has a hidden **wish**: a rank in its category drawn by popularity (what the
  shopper came for). An item's relevance is ``exp(-|rank - wish| / width)`` for the nearest
  wish of its category, 0 outside the interests;
* the shopper examines the list top-down with the DCG discount ``1 / log2(position + 2)`` and
  clicks an examined item with chance ``click_scale x relevance`` (half for an item seen
  before, never the item it is looking at); at most one click per list, the first that fires;
* without a click the shopper walks on as the generator's shoppers do;
* every click may become a cart, with a chance that rises with the item's relevance; at the
  end, a session with carts orders as in the generator.

A better recommender shows more relevant items: more clicks on the lists, and carts and orders
follow, because clicked items are relevant ones. Each shopper draws its profile, its walk and
its reactions from three streams of its own seed, so methods compared on the same seeds face the
same shoppers (common random numbers) until their lists make the paths differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence

from producers.generator import GeneratorConfig, build_catalog, popular_items, popular_ranks
from stream.events import CARTS, CLICKS, ORDERS, Event

__all__ = ["Shopper", "ShopperModel", "Step", "World"]

#: Rewards per reaction, as the SQN paper sets them (a click 0.2; a purchase, here a cart, 1.0).
CLICK_REWARD, CART_REWARD = 0.2, 1.0


@dataclass(frozen=True)
class ShopperModel:
    """How shoppers react to the lists they see (``docs/simulation.md`` justifies each)."""

    #: Items a list shows; longer lists are cut, shorter ones are fine.
    list_size: int = 20
    #: Chance to click an examined item of relevance 1 (at the top of the list).
    click_scale: float = 0.3
    #: How fast relevance falls with the distance in ranks from the wish.
    relevance_width: float = 8.0
    #: Appeal of an item the shopper has seen before, relative to a new one.
    seen_weight: float = 0.5
    #: A click becomes a cart with ``min(max_cart, cart_chance x cart_boost x relevance)``.
    cart_boost: float = 3.0
    max_cart: float = 0.9
    #: Browsing steps at most; the generator's length draw is clipped to it.
    max_steps: int = 200

    def __post_init__(self) -> None:
        if not 1 <= self.list_size <= 100 or not 1 <= self.max_steps:
            raise ValueError("need 1 <= list_size <= 100 and max_steps >= 1")
        for name in ("click_scale", "seen_weight", "max_cart"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if self.relevance_width <= 0 or self.cart_boost < 0:
            raise ValueError("need relevance_width > 0 and cart_boost >= 0")


class World:
    """The catalog shoppers live in (a generator config's) and how they react."""

    def __init__(self, config: GeneratorConfig, model: ShopperModel | None = None) -> None:
        self.config, self.model = config, model or ShopperModel()
        self.catalog = catalog = build_catalog(config)
        rank = np.empty(config.items, dtype=np.int64)
        rank[catalog.order] = (np.arange(config.items)
                               - catalog.bounds[catalog.category[catalog.order]])
        # Plain lists: a step reads a few dozen entries, where numpy's per-call cost dominates.
        self.category: list[int] = catalog.category.tolist()
        self.rank: list[int] = rank.tolist()
        self.order: list[int] = catalog.order.tolist()
        self.bounds: list[int] = catalog.bounds.tolist()
        self.complement: list[int] = catalog.complement.tolist()
        self.discount = [1.0 / math.log2(k + 2) for k in range(self.model.list_size)]

    @property
    def items(self) -> int:
        return self.config.items

    def shopper(self, seed: int, index: int, session: int, start_ms: int) -> Shopper:
        """Shopper ``index`` of ``seed``: the same one every time, whoever serves it."""
        return Shopper(self, seed, index, session, start_ms)


@dataclass(frozen=True)
class Step:
    """What one step of a shopper did: its new events, which shown item it clicked (position
    in the list, or None), whether that click became a cart, and the reward."""

    events: list[Event]
    clicked: int | None
    carted: bool
    reward: float


class Shopper:
    """One simulated session: call :meth:`step` until :attr:`done`, then :meth:`finish`."""

    def __init__(self, world: World, seed: int, index: int, session: int, start_ms: int) -> None:
        config, model = world.config, world.model
        profile, walk, react = (Generator(PCG64(s)) for s in
                                SeedSequence(entropy=seed, spawn_key=(index,)).spawn(3))
        self.world, self.session, self.ts = world, session, start_ms
        self._walk_rng, self._react_rng = walk, react
        length = math.log(config.length_median)
        self.steps_left = int(np.clip(round(profile.lognormal(length, config.length_sigma)),
                                      2, min(config.max_length, model.max_steps)))
        first = world.category[int(popular_items(world.catalog, 1, profile)[0])]
        extra = min(config.max_interests - 1,
                    int(profile.poisson(config.extra_interests * math.log2(self.steps_left))))
        interests = [first]
        for _ in range(extra):
            if profile.random() < config.complement_prob:
                interests.append(world.complement[first])
            else:
                interests.append(world.category[int(popular_items(world.catalog, 1,
                                                                  profile)[0])])
        self.interests = interests
        self.wishes = popular_ranks(world.catalog, np.array(interests), profile).tolist()
        self.cart_chance = min(0.6, config.cart_rate * float(
            profile.gamma(config.cart_shape, 1 / config.cart_shape)))
        self.viewed: list[int] = []
        self.seen: set[int] = set()
        self.carted: list[int] = []
        self._position: tuple[int, int] | None = None  # the walk: (category, rank)
        self.rewards = 0.0

    @property
    def done(self) -> bool:
        return self.steps_left <= 0

    def relevance(self, aid: int) -> float:
        """How much the shopper wants ``aid``: 1 at a wish, falling with the rank distance."""
        world = self.world
        category, rank = world.category[aid], world.rank[aid]
        best = 0.0
        for interest, wish in zip(self.interests, self.wishes, strict=True):
            if interest == category:
                best = max(best, math.exp(-abs(rank - wish) / world.model.relevance_width))
        return best

    def _appeal(self, aid: int) -> float:
        if self.viewed and aid == self.viewed[-1]:
            return 0.0
        weight = self.world.model.seen_weight if aid in self.seen else 1.0
        return weight * self.relevance(aid)

    def step(self, shown: Sequence[int] | None = None) -> Step:
        """One browsing step after seeing ``shown`` (valid aids; None: no list)."""
        if self.done:
            raise RuntimeError("the shopper has left; call finish()")
        world, model = self.world, self.world.model
        # A fixed number of draws per step keeps methods' random streams aligned.
        draws = self._react_rng.random(model.list_size + 1)
        clicked = None
        if shown:
            scale = model.click_scale
            for k, aid in enumerate(shown[:model.list_size]):
                if draws[k] < scale * world.discount[k] * self._appeal(aid):
                    clicked = k
                    break
        if clicked is not None:
            aid = shown[clicked]  # type: ignore[index]
            self._position = (world.category[aid], world.rank[aid])
        else:
            aid = self._walk()
        self.ts += self._gap(25.0)
        events = [Event(self.session, aid, self.ts, CLICKS)]
        self.viewed.append(aid)
        self.seen.add(aid)
        chance = min(model.max_cart, self.cart_chance * model.cart_boost * self.relevance(aid))
        carted = bool(draws[-1] < chance)
        if carted:
            self.ts += self._gap(5.0)
            events.append(Event(self.session, aid, self.ts, CARTS))
            self.carted.append(aid)
        self.steps_left -= 1
        reward = 0.0
        if clicked is not None:
            reward = CLICK_REWARD + (CART_REWARD if carted else 0.0)
        self.rewards += reward
        return Step(events, clicked, carted and clicked is not None, reward)

    def finish(self) -> list[Event]:
        """The order burst, if the session orders: distinct carted items, one timestamp."""
        config, rng = self.world.config, self._walk_rng
        if not self.carted or rng.random() >= config.order_prob:
            return []
        distinct = list(dict.fromkeys(self.carted))
        last = self.carted[-1]
        bought = [a for a in distinct if a == last or rng.random() < config.buy_prob]
        self.ts += self._gap(config.checkout_median_s)
        return [Event(self.session, aid, self.ts, ORDERS) for aid in bought]

    def _gap(self, median_s: float) -> int:
        sigma = self.world.config.gap_sigma
        return max(1, round(float(self._walk_rng.lognormal(math.log(median_s * 1000), sigma))))

    def _walk(self) -> int:
        """The next item without a recommendation, as the generator's shoppers find it."""
        world, config, rng = self.world, self.world.config, self._walk_rng
        viewed = self.viewed
        if viewed:
            u = rng.random()
            if u < config.revisit_prob:
                back = min(int(rng.geometric(config.revisit_decay)), len(viewed))
                return viewed[-back]
            if u < config.revisit_prob + config.stray_prob:
                return int(popular_items(world.catalog, 1, rng)[0])
        position = self._position
        if position is None or rng.random() < config.restart_prob:
            interest = 0 if not viewed else int(rng.integers(len(self.interests)))
            category = self.interests[interest]
            rank = int(popular_ranks(world.catalog, np.array([category]), rng)[0])
        else:
            category, rank = position
            width = config.neighbour_width
            step = int(rng.integers(1, width + 1)) * (1 if rng.random() < 0.5 else -1)
            rank = _reflect(rank + step, world.bounds[category + 1] - world.bounds[category])
        self._position = (category, rank)
        return world.order[world.bounds[category] + rank]


def _reflect(rank: int, size: int) -> int:
    """Fold a walk back into ``[0, size)``, mirrored at both ends (as the generator does)."""
    if size <= 1:
        return 0
    period = 2 * (size - 1)
    folded = rank % period
    return period - folded if folded >= size else folded
