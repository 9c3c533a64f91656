"""Run methods through a protocol and score them: what ``liverec evaluate`` prints.

Each method trains on the training part in time order (the re-rankers learning test-then-train
as they would live), then replays the test part in time order: for next item, every event
after a session's first is judged against the lists live just before it; for OTTO, the given
part of each test session is fed and the lists at its end are scored against the labels.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TextIO, TypeVar

from evaluation.methods import Method, make_method
from evaluation.protocols import OttoSplit, time_ordered, truth_sets
from online_models.metrics import NextItemScores, OttoScores
from online_models.recommend import Lists
from online_models.rerank import RerankConfig
from online_models.sequence.config import SequenceConfig
from stream.events import CLICKS, Event
from stream.pipeline import PipelineConfig

Result = dict[str, float | int]
Progress = Callable[[str], None]


def stderr_progress(stream: TextIO = sys.stderr) -> Progress:
    def say(message: str) -> None:
        print(message, file=stream, flush=True)
    return say


def _quiet(message: str) -> None:
    pass


#: Rough relative cost of each method's run: the costliest start first, so that with two
#: processes the slowest method does not start last, after the others.
_COST = {"sqn": 9, "sasrec": 8, "gru4rec": 8, "rerank": 6, "covis-batch": 5, "vsknn": 4, "mf": 4,
         "prior": 3, "covis": 2, "sr": 1}
_job: Callable[[str], Any] | None = None  # the run a forked worker process calls
R = TypeVar("R")


def _run_job(name: str) -> Any:
    assert _job is not None
    return _job(name)


def run_each(names: Sequence[str], run: Callable[[str], R], jobs: int = 1) -> dict[str, R]:
    """``run`` for each method, in up to ``jobs`` processes at once (one per method).

    The methods share nothing, so the results are the same as one after another; only each
    method's ``seconds`` grow with what runs beside it. The processes are forked: they read
    the data already in memory without a copy. Where fork is missing, or JAX has already
    started its threads in this process (a forked copy of them can hang), the methods run
    one after another.
    """
    jobs = min(jobs, len(names))
    if (jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods()
            or "jax" in sys.modules):
        return {name: run(name) for name in names}
    global _job
    _job = run
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            order = sorted(names, key=lambda n: -_COST.get(n, 0))
            futures = {name: pool.submit(_run_job, name) for name in order}
            return {name: futures[name].result() for name in names}
    finally:
        _job = None


def _train(method: Method, train: Sequence[Event], say: Progress) -> float:
    started = time.perf_counter()
    method.train(train)
    seconds = time.perf_counter() - started
    say(f"  {method.name}: trained on {len(train):,} events in {seconds:.1f} s")
    return seconds


def evaluate_next_item(names: Sequence[str], train: Sequence[Event], test: Sequence[Event], *,
                       online: bool = False, config: PipelineConfig | None = None,
                       rerank: RerankConfig | None = None,
                       sequence: SequenceConfig | None = None, by_type: bool = False,
                       progress: Progress = _quiet, jobs: int = 1) -> dict[str, Result]:
    """HR@20, MRR@20 and NDCG@20 of each method over every position of every test session
    (``jobs``: methods run at once, :func:`run_each`).

    ``by_type``: as the papers on clicks and purchases report it, HR and NDCG at 5, 10 and
    20 apart for the positions whose event is a click (judged against the clicks list) and
    for those that are a purchase, a cart or an order (each against its own type's list).
    """
    train, test = time_ordered(train), time_ordered(test)
    test_sessions = {e.session for e in test}
    overlap = test_sessions & {e.session for e in train}
    if overlap:
        raise ValueError(f"{len(overlap):,} session ids appear in both the training and the test "
                         f"file (e.g. {min(overlap)}); next-item evaluation needs disjoint "
                         "sessions")
    def run(name: str) -> Result:
        started = time.perf_counter()
        method = make_method(name, config, rerank, sequence, progress)
        _train(method, train, progress)
        scores = NextItemScores()
        kinds = {kind: [NextItemScores(k) for k in BY_TYPE_KS] for kind in ("click", "buy")}
        seen: set[int] = set()

        def judge(event: Event, lists: Lists) -> None:
            if event.session not in seen:
                return
            if not by_type:
                scores.add(lists.clicks, event.aid)
                return
            listed = (lists.clicks, lists.carts, lists.orders)[event.type]
            for cut in kinds["click" if event.type == CLICKS else "buy"]:
                cut.add(listed, event.aid)

        for event in test:
            method.feed((event,), learn=online, judge=judge)
            seen.add(event.session)
        result: Result = scores.as_dict() if not by_type else _by_type(kinds)
        result["seconds"] = time.perf_counter() - started
        progress(f"  {name}: {_summary(result)}")
        return result

    return run_each(names, run, jobs)


#: The list lengths ``--by-type`` reports, as the papers on clicks and purchases do.
BY_TYPE_KS = (5, 10, 20)


def _by_type(kinds: dict[str, list[NextItemScores]]) -> Result:
    result: Result = {}
    for kind, cuts in kinds.items():
        for cut in cuts:
            figures = cut.as_dict()
            result[f"{kind} HR@{cut.k}"] = figures[f"HR@{cut.k}"]
            result[f"{kind} NDCG@{cut.k}"] = figures[f"NDCG@{cut.k}"]
        result[f"{kind} positions"] = cuts[0].positions
    return result


def evaluate_otto(names: Sequence[str], split: OttoSplit, *, online: bool = False,
                  config: PipelineConfig | None = None, rerank: RerankConfig | None = None,
                  sequence: SequenceConfig | None = None,
                  progress: Progress = _quiet, jobs: int = 1) -> dict[str, Result]:
    """Recall@20 per objective, the weighted score and NDCG@20 of each method (``jobs``:
    methods run at once, :func:`run_each`)."""
    def run(name: str) -> Result:
        started = time.perf_counter()
        method = make_method(name, config, rerank, sequence, progress)
        _train(method, split.train, progress)
        scores = score_predictions(final_lists(method, split.test, learn=online), split)
        result: Result = {**scores.as_dict(), "seconds": time.perf_counter() - started}
        progress(f"  {name}: {_summary(result)}")
        return result

    return run_each(names, run, jobs)


def final_lists(method: Method, events: Sequence[Event], *, learn: bool) -> dict[int, Lists]:
    """Feed events in order and take each session's lists right after its last event.

    Right after, not at the end of the feed: a session's lists are what it was served then,
    and by the end of the test period an idle session may have expired (TTL) from state.
    """
    last = {event.session: i for i, event in enumerate(events)}
    lists: dict[int, Lists] = {}
    for i, event in enumerate(events):
        method.feed((event,), learn=learn)
        if last[event.session] == i:
            lists[event.session] = method.lists(event.session)
    return lists


def score_predictions(predictions: dict[int, Lists], split: OttoSplit) -> OttoScores:
    """Score lists against the split's labels; a labelled session without lists scores 0."""
    scores = OttoScores()
    empty = Lists([], [], [])
    for session, labels in split.labels.items():
        lists = predictions.get(session, empty)
        scores.add({"clicks": lists.clicks, "carts": lists.carts, "orders": lists.orders},
                   truth_sets(labels))
    return scores


def predict(name: str, train: Sequence[Event], test: Sequence[Event], *, online: bool = False,
            config: PipelineConfig | None = None, rerank: RerankConfig | None = None,
            sequence: SequenceConfig | None = None,
            progress: Progress = _quiet) -> dict[int, Lists]:
    """Each test session's lists after its given events (``liverec predict``)."""
    method = make_method(name, config, rerank, sequence, progress)
    _train(method, time_ordered(train), progress)
    return final_lists(method, time_ordered(test), learn=online)


def _summary(result: Result) -> str:
    shown = [f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float) and k != "seconds"]
    return ", ".join(shown) + f" ({result['seconds']:.1f} s)"


def format_table(results: dict[str, Result]) -> str:
    """A readable table: one row per method, one column per figure."""
    columns = list(dict.fromkeys(k for r in results.values() for k in r))
    width = max(len("method"), *(len(n) for n in results))
    cells = [[f"{'method':<{width}}", *(f"{c:>16}" for c in columns)]]
    for name, result in results.items():
        row = [f"{name:<{width}}"]
        for c in columns:
            value = result.get(c)
            if value is None:
                text = "–"
            elif c == "seconds":
                text = f"{value:.1f}"
            elif isinstance(value, int):
                text = f"{value:,}"
            else:
                text = f"{value:.4f}"
            row.append(f"{text:>16}")
        cells.append(row)
    return "\n".join("  ".join(row) for row in cells)
