"""A trained sequence model in the stream: candidates, reasons, hot swaps, bad files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation.protocols import time_ordered
from online_models.candidates import build_candidates
from online_models.rerank import RerankConfig
from online_models.sequence import SequenceConfig, SequenceModel
from online_models.sequence.source import SequenceSource
from producers.generator import GeneratorConfig, generate_sessions
from stream.events import Event
from stream.pipeline import PipelineConfig, SessionPipeline

ITEMS = list(range(1, 400))


def model_file(path: Path, seed: int, items: list[int] = ITEMS) -> Path:
    SequenceModel.untrained(SequenceConfig(kind="gru4rec", dim=8, seed=seed), items).save(path)
    return path


def replace(path: Path, seed: int) -> None:
    """Write beside, then rename over: how an operator swaps a model in."""
    fresh = model_file(path.with_suffix(".new"), seed)
    os.replace(fresh, path)


def test_the_source_serves_the_model_and_swaps_when_the_file_changes(tmp_path: Path) -> None:
    now = [0.0]
    path = model_file(tmp_path / "m.npz", seed=1)
    source = SequenceSource(path, check_s=5.0, clock=lambda: now[0])
    first = source.top([5, 6, 7], 10)
    assert first == SequenceModel.load(path).top([5, 6, 7], 10)
    replace(path, seed=2)
    assert source.top([5, 6, 7], 10) == first  # not checked again yet
    now[0] = 5.0
    second = source.top([5, 6, 7], 10)
    assert second == SequenceModel.load(path).top([5, 6, 7], 10) != first
    assert source.swaps == 1 and not source.refresh(force=True)  # unchanged: no reload


def test_a_bad_file_is_refused_at_start_and_never_swapped_in(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="no such file"):
        SequenceSource(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a liverec sequence model"):
        SequenceSource(tmp_path / "junk.npz")
    path = model_file(tmp_path / "m.npz", seed=1)
    source = SequenceSource(path)
    before = source.top([5, 6], 5)
    path.write_bytes(path.read_bytes()[:100])  # a half-written copy
    with caplog.at_level(logging.WARNING):
        assert not source.refresh(force=True)
        assert not source.refresh(force=True)
    assert source.failed_loads == 2 and source.top([5, 6], 5) == before
    assert sum("not swapped" in r.message for r in caplog.records) == 1  # said once
    path.unlink()
    assert not source.refresh(force=True) and source.top([5, 6], 5) == before


def test_unknown_items_get_no_picks(tmp_path: Path) -> None:
    source = SequenceSource(model_file(tmp_path / "m.npz", seed=1))
    assert source.top([10**12, -5], 10) == []
    assert len(source.top([10**12, 5], 10)) == 10  # the known item still counts


def test_picks_become_candidates_with_a_feature_of_their_own(tmp_path: Path) -> None:
    pipeline = SessionPipeline(PipelineConfig(rerank=RerankConfig()))
    pipeline.apply([Event(1, a, 1000 * a, 0) for a in (5, 6, 7)])
    source = SequenceSource(model_file(tmp_path / "m.npz", seed=3))
    events = list(pipeline.sessions.get(1).recent)  # type: ignore[union-attr]
    config = RerankConfig()
    plain = build_candidates(events, pipeline.covis, pipeline.popularity, None, config)
    with_picks = build_candidates(events, pipeline.covis, pipeline.popularity, None, config,
                                  sequence=source)
    picks = [a for a, _ in source.top([5, 6, 7], config.sequence_picks)]
    shortlisted = dict(zip(with_picks.aids, with_picks.keys, strict=True))
    first = picks[0]
    assert first in shortlisted and "sequence=0" in shortlisted[first]  # rank bucket 0
    assert not any(k.startswith("sequence=") for keys in plain.keys for k in keys)


@pytest.fixture(scope="module")
def users_log() -> list[Event]:
    """4,000 generated sessions (over 50,000 events, 57 days, long sessions)."""
    config = GeneratorConfig(sessions=4000, items=3000, seed=21)
    events = time_ordered(e for _, s in generate_sessions(config) for e in s)
    assert len(events) > 50_000
    return events


@pytest.mark.slow
def test_a_pipeline_swaps_models_mid_stream_and_explains_the_picks(
        tmp_path: Path, users_log: list[Event]) -> None:
    path = model_file(tmp_path / "m.npz", seed=5, items=list(range(3000)))
    pipeline = SessionPipeline(PipelineConfig(rerank=RerankConfig(sequence_model=str(path))))
    source = pipeline.reranker.sequence  # type: ignore[union-attr]
    assert source is not None
    half = len(users_log) // 2
    pipeline.apply(users_log[:half])
    SequenceModel.untrained(SequenceConfig(kind="gru4rec", dim=8, seed=6),
                            list(range(3000))).save(tmp_path / "next.npz")
    os.replace(tmp_path / "next.npz", path)
    assert source.refresh(force=True)
    pipeline.apply(users_log[half:])
    assert pipeline.stats()["sequence_model_swaps"] == 1
    picked = 0
    for session in {e.session for e in users_log[-3000:]}:
        recs = pipeline.recommendations(session)
        assert recs.why is not None
        state = pipeline.sessions.get(session)
        picks = {a for a, _ in source.top([a for a, _, _ in state.recent], 20)} \
            if state is not None else set()
        for objective in ("clicks", "carts", "orders"):
            for aid, reason in zip(getattr(recs, objective), recs.why[objective], strict=True):
                if reason.source == "sequence_pick":
                    assert aid in picks  # the reason is true, of the model now serving
                    picked += 1
    assert picked > 0


@given(st.lists(st.integers(-3, 3), min_size=1, max_size=3000), st.integers(0, 40))
def test_the_top_items_are_exactly_the_highest_scores_ties_by_index(values: list[int],
                                                                     k: int) -> None:
    from online_models.sequence.model import _top_indices

    scores = np.array(values, dtype=np.float32) / 2  # few distinct values: many ties
    expected = sorted(range(len(values)), key=lambda i: (-scores[i], i))[:k]
    assert _top_indices(scores, k).tolist() == expected
