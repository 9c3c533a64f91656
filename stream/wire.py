"""An event on the wire: the key and value it has on the events topic, and back.

The key is the session (so one partition holds a session's events in order), the value the
event as OTTO json. Producers, the Kafka bus and the workers all use these three functions, and
none of them needs a Kafka client to do so.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson

from stream.events import Event, EventError, parse_event

#: Largest message accepted as an event; anything bigger is not one.
MAX_MESSAGE_BYTES = 4096


def bootstrap_of(url: str) -> str:
    """``kafka://host:port[,host:port]`` → ``host:port[,host:port]``."""
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ValueError(f"bus {url!r}: expected kafka://host:port")
    return parts.netloc


def encode(event: Event) -> tuple[bytes, bytes]:
    """(key, value) of an event on the topic."""
    return str(event.session).encode(), orjson.dumps(event.to_json())


def decode(value: bytes | None) -> Event:
    """An event from a message value, or :class:`EventError` saying why not."""
    if value is None:
        raise EventError("message", "empty value")
    if len(value) > MAX_MESSAGE_BYTES:
        raise EventError("message", f"{len(value)} bytes; an event is at most {MAX_MESSAGE_BYTES}")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise EventError("message", f"not JSON: {exc}") from None
    return parse_event(obj)
