"""Lists computed from the shared store: what workers push and stateless web nodes serve.

The same recipe as the embedded pipeline (:func:`stream.pipeline.session_lists`), reading
co-visitation rows and popularity from Redis instead of memory. Over the same events both give
the same lists: rows are the same integer sums and popularity the same integer counts, ranked
by the same rules (see ``docs/production.md``).

A :class:`StoreView` serves one round of lists (the watched sessions a batch touched, or one
request): it fetches every row the round needs in one round trip and each popularity list once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from online_models.recommend import rows_needed
from online_models.redis_store import RedisStore
from online_models.rows import top_items
from online_models.sessions import SessionState
from stream.pipeline import Recommendations, session_lists


class StoreView:
    """Rows and popularity read from the store once per round (a snapshot, not a cache)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._rows: dict[tuple[str, int], dict[int, int]] = {}
        self._popular: dict[int, list[int]] = {}

    def prefetch(self, states: Iterable[SessionState], k: int = 20) -> None:
        """Fetch the rows the recipe will read for these sessions, in one round trip."""
        wanted = [row for state in states for row in rows_needed(state.recent, k)
                  if row not in self._rows]
        if wanted:
            self._rows.update(self.store.rows(wanted))

    # Neighbours
    def top(self, matrix: str, aid: int, k: int = 20) -> list[tuple[int, int]]:
        row = self._rows.get((matrix, aid))
        if row is None:
            row = self._rows[(matrix, aid)] = self.store.row(matrix, aid)
        return top_items(row, k)

    def popular(self, etype: int, k: int) -> list[int]:
        cached = self._popular.get(etype)
        if cached is None or len(cached) < k:
            cached = self._popular[etype] = self.store.popular(etype, max(k, 40))
        return cached[:k]


class _PopularView:
    """The view's popularity under the name the recipe calls (``top(etype, k)``)."""

    def __init__(self, view: StoreView) -> None:
        self.view = view

    def top(self, etype: int, k: int = 20) -> list[int]:
        return self.view.popular(etype, k)


def lists_from_store(store: RedisStore, states: Mapping[int, SessionState | None],
                     k: int = 20) -> dict[int, Recommendations]:
    """Lists of several sessions whose states the caller holds (a worker: its own)."""
    view = StoreView(store)
    view.prefetch((s for s in states.values() if s is not None), k)
    popularity = _PopularView(view)
    return {session: session_lists(session, state, view, popularity, k)
            for session, state in states.items()}


def load_states(store: RedisStore, sessions: Iterable[int],
                window: int) -> dict[int, SessionState | None]:
    """Sessions' states as stored (None for one never seen or expired)."""
    sessions = list(sessions)
    blobs = store.sessions(sessions)
    return {s: SessionState.from_bytes(blobs[s], window) if s in blobs else None
            for s in sessions}
