"""Plain constants shared by every model: event type codes and their names.

``online_models`` is the bottom floor of liverec (see ``docs/architecture.md``); it takes plain
ints so it depends on nothing above it. The event type is the OTTO one, coded as the Kaggle
parquet variant codes it: 0 = clicks, 1 = carts, 2 = orders.
"""

from __future__ import annotations

from typing import Final

CLICKS: Final = 0
CARTS: Final = 1
ORDERS: Final = 2

#: Names in OTTO's jsonl schema, indexed by type code.
TYPE_NAMES: Final[tuple[str, str, str]] = ("clicks", "carts", "orders")
#: Reverse of :data:`TYPE_NAMES`.
TYPE_CODES: Final[dict[str, int]] = {name: code for code, name in enumerate(TYPE_NAMES)}
