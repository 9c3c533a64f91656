"""Per-session state and its bounded lifetime.

A session keeps only what the algorithms need: its last ``window`` events (the co-visitation
window and the history the lists are built from), its last ``window`` carts/orders, and the open
co-visitation runs (see ``online_models.covisitation``). Memory is bounded two ways:

* open ``all``-family runs are dropped once the session has been idle (by event time, against
  the watermark of its lane: the stream, or Kafka partition, its events arrive in) longer
  than their gap (24 h): a later occurrence would start a new run anyway;
* the whole session is dropped once idle longer than ``ttl_ms`` (14 days, the longest gap any
  pair may span), after which no event of it can pair with what was forgotten.

Both are exact when each lane is in time order (a replay publishes in time order, and Kafka
keeps each partition's order), however the lanes interleave. An event arriving later than
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


class _Lane:
    """The sessions of one ordered stream of events (a Kafka partition), by last activity."""

    __slots__ = ("watermark", "active", "with_runs")

    def __init__(self) -> None:
        self.watermark = -1
        """The latest event time the lane has seen."""
        self.active: OrderedDict[int, SessionState] = OrderedDict()
        self.with_runs: OrderedDict[int, SessionState] = OrderedDict()


class SessionStore:
    """All live sessions, ordered by last activity so expiry costs O(expired).

    Sessions live in *lanes*, one per ordered stream of events (a worker's Kafka partitions;
    the embedded runtime has one), and expire against their own lane's watermark. A worker
    consumes its partitions at different paces: against the latest time of any partition, a
    lagging partition's active sessions looked idle, lost their open runs and counted their
    pairs again (docs/covisitation.md, "Memory bound").
    """

    def __init__(self, window: int, runs_ttl_ms: int, ttl_ms: int) -> None:
        if ttl_ms < runs_ttl_ms:
            raise ValueError("a session must outlive its open runs (ttl_ms >= runs_ttl_ms)")
        self.track = False
        """New sessions record their changed runs (:meth:`SessionState.take_runs_log`)."""
        self.window = window
        self.runs_ttl_ms = runs_ttl_ms
        self.ttl_ms = ttl_ms
        self._sessions: dict[int, SessionState] = {}
        self._lane_of: dict[int, int] = {}
        self._lanes: dict[int, _Lane] = {0: _Lane()}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session: object) -> bool:
        return session in self._sessions

    @property
    def watermark(self) -> int:
        """The latest event time seen in any lane (-1: none)."""
        return max(lane.watermark for lane in self._lanes.values())

    def get(self, session: int) -> SessionState | None:
        return self._sessions.get(session)

    def put(self, session: int, state: SessionState, lane: int = 0) -> None:
        """Adopt a state loaded from elsewhere (a shared store after a rebalance)."""
        if self.track:
            state.track()
        self._forget(session)
        self._sessions[session] = state
        self._lane_of[session] = lane
        target = self._lane(lane)
        target.active[session] = state
        if state.runs:
            target.with_runs[session] = state

    def _lane(self, number: int) -> _Lane:
        lane = self._lanes.get(number)
        if lane is None:
            lane = self._lanes[number] = _Lane()
        return lane

    def _forget(self, session: int) -> None:
        number = self._lane_of.pop(session, None)
        if number is not None:
            lane = self._lanes[number]
            del lane.active[session]
            lane.with_runs.pop(session, None)
            del self._sessions[session]

    def clear(self) -> None:
        """Forget every session (they are reloaded from the shared store on next use)."""
        self._sessions.clear()
        self._lane_of.clear()
        self._lanes = {0: _Lane()}

    def touch(self, session: int, ts: int, lane: int = 0) -> SessionState:
        """The session's state, created if new, marked as active at ``ts`` in ``lane``."""
        state = self._sessions.get(session)
        if state is not None and self._lane_of[session] != lane:  # its stream changed
            self.put(session, state, lane)
        own = self._lanes.get(lane) or self._lane(lane)
        if state is None:
            state = self._sessions[session] = SessionState.empty(self.window, self.track)
            self._lane_of[session] = lane
            own.active[session] = state
        elif ts - state.max_ts > self.ttl_ms:
            # Idle past its lifetime but not swept yet (or reloaded from a shared store):
            # start afresh, exactly as if it had been swept, so the result never depends on
            # when sweeps ran. Nothing it held could pair with this event anyway.
            fresh = SessionState.empty(self.window, self.track)
            fresh.events = state.events  # versions only grow
            fresh.logged = state.logged  # its log still holds the old runs (all past the gap)
            own.with_runs.pop(session, None)
            del own.active[session]
            state = self._sessions[session] = own.active[session] = fresh
        else:
            own.active.move_to_end(session)
        with_runs = own.with_runs
        if session in with_runs:
            with_runs.move_to_end(session)
        else:
            with_runs[session] = state
        if ts > own.watermark:
            own.watermark = ts
        return state

    def expire(self) -> int:
        """Free idle sessions' runs and drop sessions past their TTL, each lane against its
        own watermark; return sessions dropped."""
        dropped = 0
        for lane in self._lanes.values():
            watermark = lane.watermark
            with_runs = lane.with_runs
            while with_runs:
                session, state = next(iter(with_runs.items()))
                if watermark - state.max_ts <= self.runs_ttl_ms:
                    break
                state.runs.clear()
                del with_runs[session]
            active = lane.active
            while active:
                session, state = next(iter(active.items()))
                if watermark - state.max_ts <= self.ttl_ms:
                    break
                del active[session], self._sessions[session], self._lane_of[session]
                dropped += 1
        return dropped

    def recent_sessions(self, limit: int) -> list[int]:
        """Up to ``limit`` most recently active sessions, most recent first (by last event
        time across lanes)."""
        heads: list[tuple[int, int]] = []
        for lane in self._lanes.values():
            for count, (session, state) in enumerate(reversed(lane.active.items())):
                if count >= limit:
                    break
                heads.append((state.max_ts, session))
        if len(self._lanes) == 1:
            return [session for _, session in heads]
        heads.sort(reverse=True)
        return [session for _, session in heads[:limit]]
