"""Which method serves a session: the pipeline's own lists, or one the shopper picked.

The shop page lets a shopper compare methods on their own session (the re-rankers against the
co-visitation recipe, a sequence model alone, best sellers). Every method reads the same
pipeline state, which keeps learning from every event as before: only what this session is
*shown* changes. A choice is remembered for ``limit`` sessions (least recently chosen
dropped), so a flood of choices cannot grow memory.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from online_models.explain import Reason
from online_models.recommend import recommend
from online_models.sessions import SessionState
from stream.pipeline import Recommendations, SessionPipeline, session_lists

_PICKED, _POPULAR = Reason("sequence_pick", None), Reason("popular", None)
#: What each method is, in the page's words.
DESCRIPTIONS = {
    "rerank": "Re-rankers learned live, one per objective",
    "covis": "Co-visitation recipe",
    "sequence": "Sequence model alone",
    "popular": "Best sellers",
}


class MethodSwitch:
    """Lists per session from the method it chose (:meth:`choose`), else the default."""

    def __init__(self, pipeline: SessionPipeline, limit: int = 100_000) -> None:
        self.pipeline = pipeline
        self.limit = limit
        self._chosen: OrderedDict[int, str] = OrderedDict()

    @property
    def default(self) -> str:
        return "rerank" if self.pipeline.reranker is not None else "covis"

    def available(self) -> list[str]:
        """The methods this pipeline can serve, the default first."""
        reranker = self.pipeline.reranker
        names = ["rerank"] if reranker is not None else []
        names.append("covis")
        if reranker is not None and reranker.sequence is not None:
            names.append("sequence")
        return [*names, "popular"]

    def method_of(self, session: int) -> str:
        return self._chosen.get(session, self.default)

    def choose(self, session: int, method: str) -> None:
        """Serve ``session`` by ``method`` from now on; ``ValueError`` if it is not served."""
        if method not in self.available():
            raise ValueError(f"{method!r} is not served here; one of "
                             f"{', '.join(self.available())}")
        self._chosen.pop(session, None)
        if method != self.default:
            self._chosen[session] = method
            if len(self._chosen) > self.limit:
                self._chosen.popitem(last=False)

    def recommendations(self, session: int) -> Recommendations:
        method = self.method_of(session)
        pipeline = self.pipeline
        if method == self.default:
            recs = pipeline.recommendations(session)
        else:
            state = pipeline.live_state(session)
            if method == "covis":
                recs = session_lists(session, state, pipeline.covis, pipeline.popularity,
                                     pipeline.config.list_size)
            else:
                recs = self._alone(session, state, method)
        return dataclasses.replace(recs, method=method)

    def _alone(self, session: int, state: SessionState | None, method: str
               ) -> Recommendations:
        """``sequence``: the model's picks, then best sellers; ``popular``: best sellers. One
        list for all three objectives: neither knows them apart."""
        pipeline = self.pipeline
        k = pipeline.config.list_size
        fill = recommend([], pipeline.covis, pipeline.popularity, k).clicks
        ranked: list[int] = []
        reranker = pipeline.reranker
        if method == "sequence" and state is not None and reranker is not None \
                and reranker.sequence is not None:
            ranked = [a for a, _ in reranker.sequence.top([a for a, _, _ in state.recent], k)]
        why = [_PICKED] * len(ranked)
        seen = set(ranked)
        ranked += [a for a in fill if a not in seen][:k - len(ranked)]
        why += [_POPULAR] * (len(ranked) - len(why))
        return Recommendations(session, ranked, list(ranked), list(ranked),
                               state.events if state is not None else 0,
                               state.max_ts if state is not None else None,
                               why={"clicks": why, "carts": list(why), "orders": list(why)})
