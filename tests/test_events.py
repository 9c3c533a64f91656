"""The event schema: the fast path of :func:`parse_event` agrees with its field-by-field checks."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.events import MAX_ID, MAX_TS_MS, Event, EventError, _parse_checked, parse_event

# Values around every bound the checks draw, and the types JSON can give a field.
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([MAX_ID, MAX_ID + 1, MAX_TS_MS,
                                                         MAX_TS_MS + 1, 2**64]),
                    st.integers(), st.floats(allow_nan=False), st.booleans())
values = st.one_of(numbers, st.none(), st.sampled_from(["clicks", "carts", "orders", "views"]),
                   st.text(max_size=3), st.lists(st.integers(), max_size=2))
objects = st.dictionaries(st.sampled_from(["session", "aid", "ts", "type", "extra"]), values)


def outcome(parse: Any, obj: object, default_ts: int | None) -> Event | str:
    try:
        return parse(obj, default_ts)
    except EventError as exc:
        return f"rejected: {exc}"


@given(obj=st.one_of(objects, values), default_ts=st.one_of(st.none(), st.just(1_000)))
def test_the_fast_path_accepts_and_rejects_exactly_what_the_checks_do(
        obj: object, default_ts: int | None) -> None:
    fast = outcome(lambda o, d: parse_event(o, default_ts=d), obj, default_ts)
    assert fast == outcome(_parse_checked, obj, default_ts)


@pytest.mark.parametrize(("obj", "reason"), [
    ({"session": 1, "aid": 2, "ts": 3, "type": [1]}, "type: unknown type [1]"),
    ({"session": True, "aid": 2, "ts": 3, "type": "clicks"}, "session: must be an integer"),
    ({"session": 1, "aid": 2, "ts": -1, "type": "clicks"}, "ts: must not be negative"),
])
def test_a_rejection_names_the_field_and_the_reason(obj: dict[str, Any], reason: str) -> None:
    with pytest.raises(EventError, match=re.escape(reason)):
        parse_event(obj)


def test_well_formed_events_in_either_spelling_of_the_type() -> None:
    assert parse_event({"session": 1, "aid": 2, "ts": 3, "type": "orders"}) == Event(1, 2, 3, 2)
    assert parse_event({"session": 1, "aid": 2, "ts": 3.0, "type": 1}) == Event(1, 2, 3, 1)
    assert parse_event({"session": 1, "aid": 2, "type": "clicks"}, default_ts=9) == Event(
        1, 2, 9, 0)
