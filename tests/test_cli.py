"""The ``liverec`` commands, run as a user would run them."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import orjson
import pytest

from liverec.cli import main


def run(*args: str) -> int:
    return main(list(args))


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "sessions.jsonl.gz"
    assert main(["generate", "--sessions", "1500", "--items", "800", "--seed", "7",
                 "--out", str(out)]) == 0
    return out


def test_generate_is_reproducible_to_the_byte(generated: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.jsonl.gz"
    assert run("generate", "--sessions", "1500", "--items", "800", "--seed", "7",
               "--out", str(again)) == 0
    assert again.read_bytes() == generated.read_bytes()
    with gzip.open(generated, "rb") as f:
        first = orjson.loads(f.readline())
    assert first["session"] == 0 and first["events"][0]["type"] in {"clicks", "carts", "orders"}


@pytest.mark.parametrize("source", ["otto", "generated", "yoochoose"])
def test_covis_stream_and_batch_outputs_are_equal(
    source: str, generated: Path, shared_data: Path, tmp_path: Path
) -> None:
    path = {
        "otto": shared_data / "otto-sample" / "train.jsonl",
        "generated": generated,
        "yoochoose": shared_data / "yoochoose-100k" / "valid.tsv",
    }[source]
    stream, batch = tmp_path / "stream.jsonl", tmp_path / "batch.jsonl"
    assert run("covis", str(path), "--mode", "stream", "--out", str(stream)) == 0
    assert run("covis", str(path), "--mode", "batch", "--out", str(batch)) == 0
    rows = read_jsonl(stream)
    assert rows and stream.read_bytes() == batch.read_bytes()
    assert [r["aid"] for r in rows] == sorted(r["aid"] for r in rows)
    for row in rows[:50]:
        for name in ("clicks", "carts_orders", "buy2buy"):
            weights = [(-w, b) for b, w in row[name]]
            assert weights == sorted(weights) and len(weights) <= 20


def test_covis_on_the_otto_sample_finds_its_known_pairs(shared_data: Path, tmp_path: Path) -> None:
    """Session 0 of the OTTO sample carts 1649869 and 461689 and orders 461689 minutes later."""
    out = tmp_path / "covis.jsonl"
    run("covis", str(shared_data / "otto-sample" / "train.jsonl"), "--out", str(out))
    rows = {r["aid"]: r for r in read_jsonl(out)}
    assert 461689 in {b for b, _ in rows[1649869]["buy2buy"]}


def test_replay_reports_what_it_replayed(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("replay", str(shared_data / "otto-sample" / "train.jsonl"), "--quiet") == 0
    out = capsys.readouterr().out
    assert "replayed 862 events" in out and "20 sessions" in out


def test_bad_lines_are_skipped_and_reported_or_fatal_with_strict(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.jsonl"
    shutil.copy(shared_data / "otto-sample" / "train.jsonl", path)
    with path.open("ab") as f:
        f.write(b'{"session": 5, "events": [{"aid": 1, "ts": -3, "type": "clicks"}]}\n')
    assert run("replay", str(path), "--quiet") == 0
    captured = capsys.readouterr()
    assert "skipped 1 bad line" in captured.err and "broken.jsonl:21" in captured.err
    assert run("replay", str(path), "--quiet", "--strict") == 2
    assert "broken.jsonl:21" in capsys.readouterr().err


def test_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run("replay", "no/such/file.jsonl")
    assert "no such file" in capsys.readouterr().err


def test_stats_compares_with_otto(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("stats", str(shared_data / "otto-sample" / "train.jsonl")) == 0
    out = capsys.readouterr().out
    assert "862" in out and "12,899,779" in out


def test_simulate_prints_intervals_per_method_and_paired_differences(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run("simulate", "--method", "popular,covis", "--shoppers", "40", "--replicates", "2",
               "--history", "300", "--items", "500", "--jobs", "1", "-q", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["shoppers"] == 40 and set(out["methods"]) == {"popular", "covis"}
    covis = out["methods"]["covis"]
    assert len(covis["replicates"]) == 2
    interval = covis["intervals"]["clicks_per_1000_lists"]
    assert interval["low"] <= interval["mean"] <= interval["high"]
    assert set(covis["versus"]) == set(out["config"]["figures"])
    assert out["methods"]["popular"]["versus"] == {}
    assert run("simulate", "--method", "popular", "--replicates", "1", "-q") == 2
    assert "replicates >= 2" in capsys.readouterr().err
    assert run("simulate", "--method", "nope", "-q") == 2
