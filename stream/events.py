"""The one event schema every reader, bus and pipeline speaks, and its validation.

An event is OTTO's: ``session:int, aid:int, ts:int (ms), type: clicks|carts|orders``. It is a
``NamedTuple`` rather than a dataclass because the hot path creates and unpacks millions of them
and tuples are the cheapest object Python has for that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from online_models.types import CARTS, CLICKS, ORDERS, TYPE_CODES, TYPE_NAMES

__all__ = [
    "CARTS",
    "CLICKS",
    "ORDERS",
    "TYPE_CODES",
    "TYPE_NAMES",
    "MAX_TS_MS",
    "MAX_ID",
    "Event",
    "EventError",
    "parse_event",
    "parse_type",
]

#: Latest timestamp accepted: 2100-01-01 UTC in ms. Anything later is a unit mistake (µs, ns).
MAX_TS_MS = 4_102_444_800_000
#: Ids must fit a signed 64-bit integer (Redis, numpy and Kafka keys all assume it).
MAX_ID = 2**63 - 1
_TYPES = "clicks, carts or orders (or 0, 1, 2)"


class Event(NamedTuple):
    """One shopper action: ``type`` is 0 = clicks, 1 = carts, 2 = orders; ``ts`` in ms."""

    session: int
    aid: int
    ts: int
    type: int

    def to_json(self) -> dict[str, Any]:
        """The event in OTTO's flat jsonl spelling (type as a name)."""
        return {"session": self.session, "aid": self.aid, "ts": self.ts,
                "type": TYPE_NAMES[self.type]}


class EventError(ValueError):
    """A rejected event: ``field`` names what was wrong, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _parse_id(obj: Mapping[str, Any], field: str) -> int:
    if field not in obj:
        raise EventError(field, "missing")
    value = obj[field]
    # bool is an int subclass; a JSON true is never a valid id.
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(field, f"must be an integer, got {type(value).__name__} {value!r:.40}")
    if not 0 <= value <= MAX_ID:
        raise EventError(field, f"must be between 0 and 2^63-1, got {value}")
    return value


def parse_type(value: Any) -> int:
    """Accept a type name (``"clicks"``) or code (``0``); return the code."""
    if isinstance(value, str):
        code = TYPE_CODES.get(value)
        if code is None:
            raise EventError("type", f"unknown type {value!r:.40}; expected {_TYPES}")
        return code
    if isinstance(value, int) and not isinstance(value, bool) and value in (CLICKS, CARTS, ORDERS):
        return value
    raise EventError("type", f"unknown type {value!r:.40}; expected {_TYPES}")


def parse_ts(value: Any, field: str = "ts") -> int:
    """Validate a millisecond timestamp: an integer in [0, 2100-01-01]."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(
            field, f"must be an integer (ms), got {type(value).__name__} {value!r:.40}"
        )
    if value < 0:
        raise EventError(field, f"must not be negative, got {value}")
    if value > MAX_TS_MS:
        raise EventError(field, f"{value} is after 2100-01-01; is it in µs or ns instead of ms?")
    return value


def parse_event(obj: Any, *, default_ts: int | None = None) -> Event:
    """Build an :class:`Event` from a decoded JSON object, or raise :class:`EventError`.

    ``default_ts`` is used when ``ts`` is absent (the web API's "now"); without it a missing
    ``ts`` is an error.
    """
    if type(obj) is dict:  # the well-formed case first, at a third of the checks' cost
        session, aid, ts, name = (obj.get("session"), obj.get("aid"), obj.get("ts"),
                                  obj.get("type"))
        etype = TYPE_CODES.get(name) if type(name) is str else None
        if (type(session) is int and type(aid) is int and type(ts) is int
                and etype is not None and 0 <= session <= MAX_ID and 0 <= aid <= MAX_ID
                and 0 <= ts <= MAX_TS_MS):
            return Event(session, aid, ts, etype)
    return _parse_checked(obj, default_ts)


def _parse_checked(obj: Any, default_ts: int | None) -> Event:
    """:func:`parse_event` field by field: every case, and the reason for a rejection."""
    if not isinstance(obj, Mapping):
        raise EventError("event", f"must be a JSON object, got {type(obj).__name__}")
    session = _parse_id(obj, "session")
    aid = _parse_id(obj, "aid")
    if "type" not in obj:
        raise EventError("type", "missing")
    etype = parse_type(obj["type"])
    if "ts" in obj and obj["ts"] is not None:
        ts = parse_ts(obj["ts"])
    elif default_ts is not None:
        ts = default_ts
    else:
        raise EventError("ts", "missing")
    return Event(session, aid, ts, etype)
