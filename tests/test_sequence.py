"""Sequence models (GRU4Rec, SASRec): training windows, numpy serving equal to JAX training,
seeded reproducibility, learning, model files (and hostile ones), the CLI and evaluation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation.evaluate import evaluate_next_item
from liverec.cli import main
from online_models.sequence import SequenceConfig, SequenceModel
from online_models.sequence.data import training_windows
from online_models.sequence.train import MissingTrainingExtra, jax_scores, train
from producers.generator import GeneratorConfig, generate_sessions, write_jsonl
from stream.events import Event

KINDS = ("gru4rec", "sasrec", "sqn")


@given(st.lists(st.lists(st.integers(1, 50), max_size=40), max_size=20),
       st.integers(1, 12))
def test_windows_predict_every_next_item_once(sessions: list[list[int]], max_len: int) -> None:
    inputs, targets, _ = training_windows(sessions, max_len)
    assert inputs.shape == targets.shape and inputs.shape[1:] == (max_len,)
    pairs = sorted((int(a), int(b)) for i, t in zip(inputs, targets, strict=True)
                   for a, b in zip(i, t, strict=True) if b)
    expected = sorted((a, b) for s in sessions for a, b in zip(s, s[1:], strict=False))
    assert pairs == expected
    assert ((inputs > 0) == (targets > 0)).all()  # a target for every input, padding aligned


@pytest.fixture(scope="module")
def users_sessions() -> list[list[int]]:
    """A user's log: 3,000 sessions over 62 days, long sessions and popular items."""
    sessions = generate_sessions(GeneratorConfig(sessions=3000, items=2000, seed=11))
    return [[e.aid for e in sorted(evs, key=lambda e: e.ts)] for _, evs in sessions]


@pytest.fixture(scope="module")
def trained(users_sessions: list[list[int]]) -> dict[str, SequenceModel]:
    assert sum(map(len, users_sessions)) >= 50_000
    return {kind: train(users_sessions, SequenceConfig(kind=kind, backbone="gru4rec", dim=32,
                                                        epochs=2, batch_size=256))[0]
            for kind in KINDS}


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_numpy_serving_equals_jax_on_a_users_log(trained: dict[str, SequenceModel],
                                                 users_sessions: list[list[int]],
                                                 kind: str) -> None:
    model = trained[kind]
    seq = model.encode(users_sessions[:500])  # short and long, padded and full windows
    ours, theirs = model.scores_batch(seq), jax_scores(model, seq)
    assert np.isneginf(ours[:, 0]).all() and np.isneginf(theirs[:, 0]).all()
    np.testing.assert_allclose(ours[:, 1:], theirs[:, 1:], rtol=1e-4, atol=1e-4)
    same_top = [list(np.argsort(-a)[:20]) == list(np.argsort(-b)[:20])
                for a, b in zip(ours, theirs, strict=True)]
    assert sum(same_top) >= 0.98 * len(same_top)  # near-ties may swap, nothing more


@pytest.mark.parametrize("kind", KINDS)
def test_training_is_seeded(kind: str) -> None:
    sessions = [[1, 2, 3, 4], [2, 3, 5], [4, 5, 1, 2, 3], [6, 1]] * 20
    types = [[0, 0, 1, 2], [0, 1, 0], [0, 0, 0, 1, 2], [0, 2]] * 20
    config = SequenceConfig(kind=kind, dim=8, max_len=6, epochs=2, batch_size=16)
    first = train(sessions, config, types=types)[0]
    second = train(sessions, config, types=types)[0]
    other = train(sessions, SequenceConfig(kind=kind, dim=8, max_len=6, epochs=2,
                                           batch_size=16, seed=1), types=types)[0]
    for name, weights in first.params.items():
        np.testing.assert_array_equal(weights, second.params[name])
    assert any(not np.array_equal(w, other.params[n]) for n, w in first.params.items())


@pytest.mark.slow
def test_sqn_values_purchases_above_clicks_and_cql_holds_unseen_actions_down() -> None:
    """After 1, shoppers click 2 as often as they buy 3: the next-item head cannot tell them
    apart, the Q head must (a purchase rewards 1.0, a click 0.2). With the conservative term,
    items never taken after 1 sit further below the logged ones."""
    sessions = [[9, 1, 2], [8, 1, 3]] * 200 + [[4, 5, 6, 7]] * 50
    types = [[0, 0, 0], [0, 0, 2]] * 200 + [[0, 0, 0, 0]] * 50
    gaps = {}
    for weight in (0.0, 5.0):
        config = SequenceConfig(kind="sqn", backbone="gru4rec", dim=16, max_len=4, epochs=20,
                                batch_size=32, dropout=0.0, cql_weight=weight)
        model = train(sessions, config, types=types)[0]
        q = model.q_scores(model.encode([[9, 1], [8, 1]])).mean(axis=0)
        index = model.vocabulary.index
        assert q[index[3]] > q[index[2]]
        unseen = [index[a] for a in (4, 5, 6, 7)]
        gaps[weight] = min(q[index[2]], q[index[3]]) - q[unseen].max()
    assert gaps[5.0] > gaps[0.0]
    with pytest.raises(ValueError, match="no Q head"):
        train([[1, 2]], SequenceConfig(kind="gru4rec", epochs=1))[0].q_scores(
            np.zeros((1, 30), dtype=np.int32))


@pytest.mark.parametrize("kind", KINDS)
def test_a_model_learns_an_obvious_sequence(kind: str) -> None:
    """Every session walks up the aids, starting and stopping anywhere: after 4 comes 5."""
    sessions = [list(range(start, start + n)) for start in range(1, 16) for n in range(2, 9)] * 4
    model, report = train(sessions, SequenceConfig(kind=kind, dim=16, max_len=8, epochs=15,
                                                   batch_size=32, dropout=0.0))
    assert report.losses[-1] < report.losses[0] / 2
    assert model.top([2, 3, 4], 1)[0][0] == 5
    assert model.top([99], 5) == []  # nothing known: nothing to say


def test_sampled_negatives_train_too() -> None:
    sessions = [list(range(start, start + n)) for start in range(1, 16) for n in range(2, 9)] * 4
    model, report = train(sessions, SequenceConfig(kind="sasrec", dim=16, max_len=8, epochs=15,
                                                   batch_size=32, negatives=4, dropout=0.0))
    assert report.losses[-1] < report.losses[0]
    assert model.top([2, 3, 4], 3)[0][0] == 5


@pytest.mark.slow
def test_a_saved_model_loads_and_scores_the_same(tmp_path: Path,
                                                 trained: dict[str, SequenceModel]) -> None:
    for kind, model in trained.items():
        path = tmp_path / f"{kind}.npz"
        model.save(path)
        loaded = SequenceModel.load(path)
        assert loaded.config == model.config
        assert loaded.top([5, 9, 13], 20) == model.top([5, 9, 13], 20)


@pytest.mark.slow
def test_hostile_model_files_are_refused_with_a_reason(tmp_path: Path,
                                                       trained: dict[str, SequenceModel]) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x00not a model" * 100)
    with pytest.raises(ValueError, match="not a liverec sequence model"):
        SequenceModel.load(junk)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"format": 1}], dtype=object), aids=np.arange(3))
    with pytest.raises(ValueError, match="not a liverec sequence model"):
        SequenceModel.load(pickled)  # object arrays would need pickle: refused
    model = trained["sasrec"]
    wrong = tmp_path / "wrong.npz"
    params = dict(model.params)
    params["item"] = params["item"][:10]
    np.savez(wrong, aids=model.vocabulary.aids, meta=np.array(
        '{"format": 1, "config": {"kind": "sasrec", "dim": 32}}'), **params)
    with pytest.raises(ValueError, match="weights do not match"):
        SequenceModel.load(wrong)
    future = tmp_path / "future.npz"
    np.savez(future, aids=np.arange(3), meta=np.array('{"format": 99, "config": {}}'))
    with pytest.raises(ValueError, match="format 99"):
        SequenceModel.load(future)


def test_liverec_train_writes_a_model_that_serves(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "sessions.jsonl"
    write_jsonl(data, generate_sessions(GeneratorConfig(sessions=200, items=300, seed=3)))
    out = tmp_path / "model.npz"
    assert main(["train", "--model", "gru4rec", "--data", str(data), "--out", str(out),
                 "--epochs", "2", "--dim", "16", "-q"]) == 0
    assert "gru4rec:" in capsys.readouterr().out
    model = SequenceModel.load(out)
    assert model.config.kind == "gru4rec" and len(model.vocabulary) > 100
    with pytest.raises(SystemExit):  # argparse refuses an unknown model, naming the choices
        main(["train", "--model", "lstm", "--data", str(data), "--out", str(out)])


def test_without_jax_training_says_what_to_install(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax now raises ImportError
    with pytest.raises(MissingTrainingExtra, match=r"liverec\[train\]"):
        train([[1, 2, 3]], SequenceConfig())
    data = tmp_path / "s.jsonl"
    write_jsonl(data, generate_sessions(GeneratorConfig(sessions=5, items=20, seed=1)))
    assert main(["train", "--model", "sasrec", "--data", str(data),
                 "--out", str(tmp_path / "m.npz"), "-q"]) == 2
    assert "pip install 'liverec[train]'" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluated_like_every_other_method() -> None:
    sessions = generate_sessions(GeneratorConfig(sessions=1500, items=400, seed=4))
    events = sorted((e for _, evs in sessions for e in evs), key=lambda e: e.ts)
    cut = events[len(events) * 3 // 4].ts
    starts = {}
    for e in events:
        starts.setdefault(e.session, e.ts)
    train_part = [e for e in events if starts[e.session] < cut]
    test_part = [Event(e.session, e.aid, e.ts, e.type) for e in events
                 if starts[e.session] >= cut]
    results = evaluate_next_item(["sasrec", "gru4rec", "popular"], train_part, test_part,
                                 sequence=SequenceConfig(epochs=10, dim=32))
    # Each of SQN's two copies learns on half the batches: twice the epochs, the same steps.
    results |= evaluate_next_item(["sqn"], train_part, test_part,
                                  sequence=SequenceConfig(epochs=20, dim=32))
    for kind in KINDS:
        assert results[kind]["HR@20"] > results["popular"]["HR@20"] + 0.2, kind


def test_by_type_splits_the_positions_between_clicks_and_purchases() -> None:
    """``history`` serves one list for all three objectives, so clicks' and purchases' hits
    add up to the plain figure; shorter lists never hit more."""
    sessions = list(generate_sessions(GeneratorConfig(sessions=3000, items=1500, seed=8)))
    events = sorted((e for _, evs in sessions for e in evs), key=lambda e: e.ts)
    assert len(events) >= 50_000
    half = {s for s, _ in sessions[::2]}
    train_part = [e for e in events if e.session in half]
    test_part = [e for e in events if e.session not in half]
    plain = evaluate_next_item(["history"], train_part, test_part)["history"]
    typed = evaluate_next_item(["history"], train_part, test_part, by_type=True)["history"]
    assert typed["click positions"] + typed["buy positions"] == plain["positions"]
    assert typed["buy positions"] > 1000
    hits = (float(typed["click HR@20"]) * int(typed["click positions"])
            + float(typed["buy HR@20"]) * int(typed["buy positions"]))
    assert hits == pytest.approx(float(plain["HR@20"]) * int(plain["positions"]))
    for kind in ("click", "buy"):
        assert typed[f"{kind} HR@5"] <= typed[f"{kind} HR@10"] <= typed[f"{kind} HR@20"]
        assert typed[f"{kind} NDCG@5"] <= typed[f"{kind} NDCG@20"]


def test_by_type_is_refused_where_it_means_nothing(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "s.jsonl"
    write_jsonl(data, generate_sessions(GeneratorConfig(sessions=50, items=50, seed=1)))
    assert main(["evaluate", "--protocol", "otto", "--data", str(data), "--by-type",
                 "--method", "popular", "-q"]) == 2
    assert "--by-type is for --protocol next-item" in capsys.readouterr().err
