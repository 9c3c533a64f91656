"""``liverec evaluate --labels --predictions`` equals OTTO's official ``evaluate.py`` to the
digit: figures computed by hand from the official script's rules."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from liverec.cli import main

LABELS = [
    # A click label of aid 0 is no label for the official script (0 is false in Python).
    {"session": 1, "labels": {"clicks": 0, "carts": [5]}},
    {"session": 2, "labels": {"clicks": 7, "carts": [1, 2], "orders": [3]}},
    {"session": 3, "labels": {"clicks": 9, "orders": [4, 4, 8]}},  # no rows at all
    {"session": 4, "labels": {"clicks": 0, "orders": [6]}},
    {"session": 5, "labels": {"clicks": 3, "orders": [11, 12]}},
]
ROWS = [
    "1_clicks,0",                     # predicted, but the label does not count
    "1_carts,5",                      # 1 of 1
    "2_clicks,7",                     # hit
    "2_carts," + " ".join(["1"] * 20 + ["2"]),  # 20 positions of aid 1: 1 of 2, aid 2 is 21st
    "2_orders,",                      # an empty row: 0 of 1
    "4_clicks,0",
    "4_orders," + " ".join(str(a) for a in range(100, 120)) + " 6",  # 6 is 21st: 0 of 1
    "5_clicks," + " ".join(str(a) for a in range(100, 119)) + " 3 4 5 6 7 8",  # 20th: hit
    "5_orders,11 11 12",              # duplicates take positions, hits count once: 2 of 2
]


def files(tmp_path: Path, labels: list[dict[str, object]], rows: list[str]) -> tuple[Path, Path]:
    """A labels file and a submission, in OTTO's formats."""
    labels_path, predictions = tmp_path / "labels.jsonl", tmp_path / "submission.csv"
    labels_path.write_bytes(b"".join(orjson.dumps(obj) + b"\n" for obj in labels))
    predictions.write_text("session_type,labels\n" + "\n".join(rows) + "\n")
    return labels_path, predictions


def test_the_official_rules_on_a_hand_computed_submission(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels, predictions = files(tmp_path, LABELS, ROWS)
    assert main(["evaluate", "--protocol", "otto", "--labels", str(labels),
                 "--predictions", str(predictions), "--json"]) == 0
    result = orjson.loads(capsys.readouterr().out)["submission.csv"]
    # clicks: sessions 2 (hit), 3 (no row: miss), 5 (hit at position 20); 1 and 4 have aid 0
    assert result["recall_clicks@20"] == 2 / 3
    # carts: session 1 (1 of 1), session 2 (1 of 2)
    assert result["recall_carts@20"] == 2 / 3
    # orders: 2 (0 of 1), 3 (0 of {4, 8}), 4 (0 of 1), 5 (2 of 2)
    assert result["recall_orders@20"] == 2 / 6
    assert result["score"] == 0.1 * (2 / 3) + 0.3 * (2 / 3) + 0.6 * (2 / 6)


def test_an_aid_zero_click_label_counts_for_neither_hits_nor_sessions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels, predictions = files(
        tmp_path, [{"session": 1, "labels": {"clicks": 0}},
                   {"session": 2, "labels": {"clicks": 4}}],
        ["1_clicks,0 1 2", "2_clicks,5 6"])
    assert main(["evaluate", "--protocol", "otto", "--labels", str(labels),
                 "--predictions", str(predictions), "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["submission.csv"]["recall_clicks@20"] == 0.0
