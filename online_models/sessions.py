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

A shared store keeps a session in two parts (:meth:`SessionState.to_bytes` without runs, and
:meth:`SessionState.take_runs_log`): the window as JSON, rewritten per batch, and the open runs
as an append-only log of the runs that changed, so that a batch writes what it changed and not
a long session's thousands of runs again. A run past its gap in the log behaves exactly like
a missing one (both start a new run), so runs freed in memory need no deletion in the log; the
log is rewritten whole once it holds twice the live runs.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import orjson

_LOW = (1 << 64) - 1
#: Rewrite a session's runs log whole once it holds more than twice its live runs, plus this.
_LOG_SLACK = 64


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
    changed_runs: set[int] | None = field(default=None, compare=False)
    """Keys of ``runs`` set since the last :meth:`take_runs_log` (None: not tracked)."""
    changed_buy_runs: set[int] | None = field(default=None, compare=False)
    """Likewise for ``buy_runs``."""
    logged: int = field(default=0, compare=False)
    """Entries in the store's runs log of this session, as far as this process knows."""

    @classmethod
    def empty(cls, window: int, track: bool = False) -> SessionState:
        """A new session; ``track``: record changed runs for :meth:`take_runs_log`."""
        state = cls(deque(maxlen=window), deque(maxlen=window))
        if track:
            state.track()
        return state

    def track(self) -> None:
        """Record the runs that change from now on (a worker writing them to a store)."""
        if self.changed_runs is None:
            self.changed_runs, self.changed_buy_runs = set(), set()

    def to_bytes(self, runs: bool = True) -> bytes:
        """The state as JSON, for a shared store (pair keys split into two ids); without
        ``runs``, everything but the runs, which then travel in :meth:`take_runs_log`."""
        obj: dict[str, object] = {
            "recent": list(self.recent), "buys": list(self.recent_buys),
            "max_ts": self.max_ts, "events": self.events, "window_buys": self.window_buys,
            "ordered": self.ordered,
        }
        if runs:
            obj["runs"] = [[k >> 64, k & _LOW, v] for k, v in self.runs.items()]
            obj["buy_runs"] = [[k >> 64, k & _LOW, v] for k, v in self.buy_runs.items()]
        return orjson.dumps(obj)

    def take_runs_log(self) -> tuple[bytes, bool]:
        """The runs changed since the last call, as log entries to append, or, once the log
        would hold more than twice the live runs, every live run to replace it (``True``).

        An entry is three signed 64-bit integers (lo id, hi id, run), ``lo`` stored as
        ``-1 - lo`` for a ``buys`` run. Requires :meth:`track`.
        """
        changed, changed_buys = self.changed_runs, self.changed_buy_runs
        if changed is None or changed_buys is None:
            raise RuntimeError("take_runs_log needs a tracked state (SessionState.track)")
        live = len(self.runs) + len(self.buy_runs)
        full = self.logged + len(changed) + len(changed_buys) > 2 * live + _LOG_SLACK
        keys = self.runs.keys() if full else changed
        buy_keys = self.buy_runs.keys() if full else changed_buys
        flat: list[int] = []  # one array from a list: a third faster than extending one
        runs, buy_runs = self.runs, self.buy_runs
        # A changed run that a sweep has freed since (idle past the runs' lifetime) is left
        # out: an older entry of it in the log is past its gap too, which reads as missing.
        for key in keys:
            if (run := runs.get(key)) is not None:
                flat += (key >> 64, key & _LOW, run)
        for key in buy_keys:
            if (run := buy_runs.get(key)) is not None:
                flat += (-1 - (key >> 64), key & _LOW, run)
        entries = array("q", flat)
        count = len(entries) // 3
        self.logged = count if full else self.logged + count
        changed.clear()
        changed_buys.clear()
        return entries.tobytes(), full

    @classmethod
    def from_bytes(cls, data: bytes, window: int, runs_log: bytes | None = None) -> SessionState:
        """Inverse of :meth:`to_bytes`, with the runs of a runs log (later entries win).

        >>> state = SessionState.empty(30, track=True)
        >>> state.runs[3 << 64 | 5] = 77
        >>> state.changed_runs.add(3 << 64 | 5)
        >>> SessionState.from_bytes(state.to_bytes(), 30) == state
        True
        >>> log, full = state.take_runs_log()
        >>> SessionState.from_bytes(state.to_bytes(runs=False), 30, log) == state
        True
        """
        obj = orjson.loads(data)
        state = cls(
            deque((tuple(e) for e in obj["recent"]), maxlen=window),  # type: ignore[misc]
            deque((tuple(e) for e in obj["buys"]), maxlen=window),  # type: ignore[misc]
            {lo << 64 | hi: v for lo, hi, v in obj.get("runs", ())},
            {lo << 64 | hi: v for lo, hi, v in obj.get("buy_runs", ())},
            max_ts=obj["max_ts"], events=obj["events"], window_buys=obj["window_buys"],
            ordered=obj["ordered"],
        )
        if runs_log:
            entries = array("q")
            entries.frombytes(runs_log)
            runs, buy_runs = state.runs, state.buy_runs
            for i in range(0, len(entries), 3):
                lo, hi, run = entries[i], entries[i + 1], entries[i + 2]
                if lo >= 0:
                    runs[lo << 64 | hi] = run
                else:
                    buy_runs[(-1 - lo) << 64 | hi] = run
            state.logged = len(entries) // 3
        return state


class SessionStore:
    """All live sessions, ordered by last activity so expiry costs O(expired)."""

    def __init__(self, window: int, runs_ttl_ms: int, ttl_ms: int) -> None:
        if ttl_ms < runs_ttl_ms:
            raise ValueError("a session must outlive its open runs (ttl_ms >= runs_ttl_ms)")
        self.track = False
        """New sessions record their changed runs (:meth:`SessionState.take_runs_log`)."""
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
        if self.track:
            state.track()
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
            state = self._sessions[session] = SessionState.empty(self.window, self.track)
        elif ts - state.max_ts > self.ttl_ms:
            # Idle past its lifetime but not swept yet (or reloaded from a shared store):
            # start afresh, exactly as if it had been swept, so the result never depends on
            # when sweeps ran. Nothing it held could pair with this event anyway.
            fresh = SessionState.empty(self.window, self.track)
            fresh.events = state.events  # versions only grow
            fresh.logged = state.logged  # its log still holds the old runs (all past the gap)
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
