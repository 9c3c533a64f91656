"""Per-session state and its bounded lifetime.

A session keeps only what the algorithms need: its last ``window`` events (the co-visitation
window and the history the lists are built from), its last ``window`` carts/orders, and the open
co-visitation runs (see ``online_models.covisitation``). Memory is bounded two ways:

* open ``all``-family runs are dropped once the session has been idle (by event time, against
  the stream's watermark) longer than their gap (24 h): a later occurrence would start a new
  run anyway;
* the whole session is dropped once idle longer than ``ttl_ms`` (14 days, the longest gap any
  pair may span), after which no event of it can pair with what was forgotten.

Both are exact for streams in time order (replay guarantees it). An event arriving later than
the watermark by more than the gap, for a session already expired, starts afresh.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import orjson

_LOW = (1 << 64) - 1


@dataclass(slots=True)
class SessionState:
    """What one session carries between events."""

    recent: deque[tuple[int, int, int]]
    """Last ``window`` events as (aid, ts, type), oldest first."""
    recent_buys: deque[tuple[int, int]]
    """Last ``window`` cart/order events as (aid, ts), oldest first."""
    runs: dict[int, int] = field(default_factory=dict)
    """``all`` family open runs, per unordered pair (packed ids → packed run; see
    :meth:`online_models.covisitation.CoVisitation._pair_all`)."""
    buy_runs: dict[int, int] = field(default_factory=dict)
    """``buys`` family: unordered pair → last tau (the weight is constant)."""
    max_ts: int = -1
    """Latest event time seen in the session."""
    window_buys: int = 0
    """Carts and orders among ``recent``."""
    ordered: bool = True
    """No event of the session has arrived with a time before an earlier one's."""
    events: int = 0
    """Events applied so far: the version of the session's recommendations."""

    @classmethod
    def empty(cls, window: int) -> SessionState:
        return cls(deque(maxlen=window), deque(maxlen=window))

    def to_bytes(self) -> bytes:
        """The whole state as JSON, for a shared store (pair keys split into two ids)."""
        return orjson.dumps({
            "recent": list(self.recent), "buys": list(self.recent_buys),
            "runs": [[k >> 64, k & _LOW, v] for k, v in self.runs.items()],
            "buy_runs": [[k >> 64, k & _LOW, v] for k, v in self.buy_runs.items()],
            "max_ts": self.max_ts, "events": self.events, "window_buys": self.window_buys,
            "ordered": self.ordered,
        })

    @classmethod
    def from_bytes(cls, data: bytes, window: int) -> SessionState:
        """Inverse of :meth:`to_bytes`.

        >>> state = SessionState.empty(30)
        >>> state.runs[3 << 64 | 5] = 77
        >>> SessionState.from_bytes(state.to_bytes(), 30) == state
        True
        """
        obj = orjson.loads(data)
        return cls(
            deque((tuple(e) for e in obj["recent"]), maxlen=window),  # type: ignore[misc]
            deque((tuple(e) for e in obj["buys"]), maxlen=window),  # type: ignore[misc]
            {lo << 64 | hi: v for lo, hi, v in obj["runs"]},
            {lo << 64 | hi: v for lo, hi, v in obj["buy_runs"]},
            max_ts=obj["max_ts"], events=obj["events"], window_buys=obj["window_buys"],
            ordered=obj["ordered"],
        )


class SessionStore:
    """All live sessions, ordered by last activity so expiry costs O(expired)."""

    def __init__(self, window: int, runs_ttl_ms: int, ttl_ms: int) -> None:
        if ttl_ms < runs_ttl_ms:
            raise ValueError("a session must outlive its open runs (ttl_ms >= runs_ttl_ms)")
        self.window = window
        self.runs_ttl_ms = runs_ttl_ms
        self.ttl_ms = ttl_ms
        self.watermark = -1
        self._sessions: OrderedDict[int, SessionState] = OrderedDict()
        self._with_runs: OrderedDict[int, SessionState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session: object) -> bool:
        return session in self._sessions

    def get(self, session: int) -> SessionState | None:
        return self._sessions.get(session)

    def put(self, session: int, state: SessionState) -> None:
        """Adopt a state loaded from elsewhere (a shared store after a rebalance)."""
        self._sessions[session] = state
        if state.runs:
            self._with_runs[session] = state

    def clear(self) -> None:
        """Forget every session (they are reloaded from the shared store on next use)."""
        self._sessions.clear()
        self._with_runs.clear()

    def touch(self, session: int, ts: int) -> SessionState:
        """The session's state, created if new, marked as active at ``ts``."""
        state = self._sessions.get(session)
        if state is None:
            state = self._sessions[session] = SessionState.empty(self.window)
        elif ts - state.max_ts > self.ttl_ms:
            # Idle past its lifetime but not swept yet (or reloaded from a shared store):
            # start afresh, exactly as if it had been swept, so the result never depends on
            # when sweeps ran. Nothing it held could pair with this event anyway.
            fresh = SessionState.empty(self.window)
            fresh.events = state.events  # versions only grow
            self._with_runs.pop(session, None)
            del self._sessions[session]
            state = self._sessions[session] = fresh
        else:
            self._sessions.move_to_end(session)
        if session in self._with_runs:
            self._with_runs.move_to_end(session)
        else:
            self._with_runs[session] = state
        if ts > self.watermark:
            self.watermark = ts
        return state

    def expire(self) -> int:
        """Free idle sessions' runs and drop sessions past their TTL; return sessions dropped."""
        watermark = self.watermark
        with_runs = self._with_runs
        while with_runs:
            session, state = next(iter(with_runs.items()))
            if watermark - state.max_ts <= self.runs_ttl_ms:
                break
            state.runs.clear()
            del with_runs[session]
        dropped = 0
        sessions = self._sessions
        while sessions:
            session, state = next(iter(sessions.items()))
            if watermark - state.max_ts <= self.ttl_ms:
                break
            del sessions[session]
            dropped += 1
        return dropped

    def recent_sessions(self, limit: int) -> list[int]:
        """Up to ``limit`` most recently active sessions, most recent first."""
        out: list[int] = []
        for session in reversed(self._sessions):
            out.append(session)
            if len(out) >= limit:
                break
        return out
