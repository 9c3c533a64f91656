"""A stable synthetic catalog: a readable name, category and price for any aid.

OTTO's aids are anonymous integers. A shop page needs names a person can recognise, so every
aid maps deterministically (a SplitMix64 hash of the aid) to a category, a name made of a
brand, an adjective and a product noun from that category, and a price. The same aid always
reads the same, on every web node, with no catalog file to ship.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

_MASK = (1 << 64) - 1

CATEGORIES: dict[str, tuple[str, ...]] = {
    "Shoes": ("Sneakers", "Running Shoes", "Boots", "Sandals", "Loafers", "Slippers"),
    "Fashion": ("T-Shirt", "Hoodie", "Jeans", "Jacket", "Dress", "Scarf", "Cardigan"),
    "Home": ("Cushion", "Throw Blanket", "Floor Lamp", "Vase", "Rug", "Curtain", "Mirror"),
    "Kitchen": ("Chef's Knife", "Frying Pan", "Kettle", "Coffee Grinder", "Mixing Bowl",
                "Teapot"),
    "Electronics": ("Headphones", "Speaker", "Power Bank", "Smartwatch", "Keyboard",
                    "Webcam"),
    "Sports": ("Yoga Mat", "Dumbbell Set", "Water Bottle", "Tennis Racket", "Backpack",
               "Bike Helmet"),
    "Beauty": ("Face Cream", "Shampoo", "Perfume", "Lip Balm", "Hair Dryer", "Body Lotion"),
    "Toys": ("Puzzle", "Building Blocks", "Plush Bear", "Board Game", "Kite", "Toy Car"),
    "Garden": ("Plant Pot", "Watering Can", "Garden Chair", "Hose", "Lantern", "Pruner"),
    "Books": ("Cookbook", "Novel", "Travel Guide", "Notebook", "Comic", "Atlas"),
}
ADJECTIVES = ("Classic", "Urban", "Cozy", "Bold", "Light", "Soft", "Smart", "Nordic",
              "Vintage", "Eco", "Pro", "Compact", "Deluxe", "Everyday", "Bright", "Calm")
BRANDS = ("Alder", "Brisk", "Corvo", "Dune", "Elko", "Fjord", "Gala", "Hobb", "Isla", "Juno",
          "Kite & Co", "Lumo", "Mira", "Nox", "Orla", "Pax")
COLOURS = ("#e76f51", "#2a9d8f", "#e9c46a", "#264653", "#f4a261", "#8ab17d", "#6d597a",
           "#b56576", "#457b9d", "#ffb703")
_CATEGORY_NAMES = tuple(CATEGORIES)


def _mix(x: int) -> int:
    """SplitMix64 finaliser: a well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


@dataclass(frozen=True, slots=True)
class Item:
    aid: int
    name: str
    category: str
    price: float
    colour: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Catalog:
    """Names for aids. ``category_of`` may pin an aid's category (an index into
    :data:`CATEGORIES`, taken modulo their number): the demo passes the generator's own item
    groups, so items that shoppers view together also sit on the same shelf."""

    def __init__(self, category_of: Callable[[int], int | None] | None = None,
                 cache_size: int = 65_536) -> None:
        self.category_of = category_of
        self.cache_size = cache_size
        self._cache: dict[int, Item] = {}

    def item(self, aid: int) -> Item:
        """The catalog entry of an aid.

        >>> Catalog().item(42) == Catalog().item(42)
        True
        >>> Catalog(lambda aid: 1).item(42).category
        'Fashion'
        """
        cached = self._cache.get(aid)
        if cached is not None:
            return cached
        h = _mix(aid)
        pinned = self.category_of(aid) if self.category_of is not None else None
        index = h % len(_CATEGORY_NAMES) if pinned is None else pinned % len(_CATEGORY_NAMES)
        category = _CATEGORY_NAMES[index]
        nouns = CATEGORIES[category]
        noun = nouns[(h >> 8) % len(nouns)]
        adjective = ADJECTIVES[(h >> 16) % len(ADJECTIVES)]
        brand = BRANDS[(h >> 24) % len(BRANDS)]
        price = round(4.99 + ((h >> 32) % 20_000) / 100.0, 2)
        colour = COLOURS[(h >> 48) % len(COLOURS)]
        result = Item(aid, f"{brand} {adjective} {noun}", category, price, colour)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[aid] = result
        return result


_DEFAULT = Catalog()


def item(aid: int) -> Item:
    """The default catalog's entry of an aid (categories from the hash of the aid)."""
    return _DEFAULT.item(aid)
