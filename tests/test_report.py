"""The evaluation report: Markdown table + sentence + PNG charts, for both protocols."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from evaluation.report import Results, write_report

NEXT_ITEM: Results = {
    "popular": {"HR@20": 0.09, "MRR@20": 0.017, "NDCG@20": 0.03, "positions": 12455,
                "seconds": 1.23},
    "rerank": {"HR@20": 0.21, "MRR@20": 0.081, "NDCG@20": 0.02, "positions": 12455,
               "seconds": 14.56},
}
OTTO: Results = {
    "popular": {"recall_clicks@20": 0.05, "recall_carts@20": 0.04, "recall_orders@20": 0.07,
                "score": 0.059, "NDCG@20": 0.01, "sessions": 1000, "seconds": 0.4},
    "covisit": {"recall_clicks@20": 0.41, "recall_carts@20": 0.33, "recall_orders@20": 0.52,
                "score": 0.4523, "NDCG@20": 0.2, "sessions": 1000, "seconds": 3.0},
    "hybrid": {"recall_clicks@20": 0.45, "recall_carts@20": 0.31, "recall_orders@20": 0.5,
               "score": 0.438, "NDCG@20": 0.25, "sessions": 1000, "seconds": 7.26,
               "coverage": 0.3},
}


def _write(results: Results, out_dir: Path, protocol: str) -> Path:
    return write_report(results, out_dir, protocol=protocol, title="Offline comparison",
                        command="liverec evaluate --report out", details={"data": "sample"})


def _png(path: Path, *, wide: bool) -> None:
    """A real PNG that decodes to a sizeable RGB(A) image of the expected shape."""
    from matplotlib.image import imread

    assert path.read_bytes()[:4] == b"\x89PNG"
    pixels = imread(path)
    height, width = pixels.shape[:2]
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert height >= 300 and width >= 900
    assert pixels.std() > 0.01  # not a blank canvas
    if wide:
        assert width / height == pytest.approx(8 / 4.5, rel=0.02)
    else:
        assert width > height


def test_next_item_report_writes_markdown_and_metrics_png(tmp_path: Path) -> None:
    report = _write(NEXT_ITEM, tmp_path, "next-item")
    assert report == tmp_path / "report.md"
    text = report.read_text()
    assert text.startswith("# Offline comparison\n")
    assert "```sh\nliverec evaluate --report out\n```" in text
    assert "- **data**: sample" in text
    assert "![metrics](metrics.png)" in text
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["metrics.png"]
    _png(tmp_path / "metrics.png", wide=True)


def test_otto_report_writes_objectives_and_score_pngs(tmp_path: Path) -> None:
    text = _write(OTTO, tmp_path, "otto").read_text()
    assert "![objectives](objectives.png)" in text and "![score](score.png)" in text
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["objectives.png", "score.png"]
    _png(tmp_path / "objectives.png", wide=True)
    _png(tmp_path / "score.png", wide=False)


def test_table_lists_every_method_with_formatted_values(tmp_path: Path) -> None:
    text = _write(NEXT_ITEM, tmp_path, "next-item").read_text()
    header = "| method | HR@20 | MRR@20 | NDCG@20 | positions | seconds |"
    assert header in text
    assert "| popular | 0.0900 | 0.0170 | 0.0300 | 12,455 | 1.2 |" in text
    assert "| rerank | 0.2100 | 0.0810 | 0.0200 | 12,455 | 14.6 |" in text


def test_table_shows_extra_keys_and_dashes_for_missing_ones(tmp_path: Path) -> None:
    text = _write(OTTO, tmp_path, "otto").read_text()
    assert "| coverage |" in text
    assert "| popular | 0.0500 | 0.0400 | 0.0700 | 0.0590 | 0.0100 | 1,000 | 0.4 | – |" in text
    assert "| hybrid |" in text and "| 7.3 | 0.3000 |" in text


def test_best_method_sentence_names_the_winner_per_metric(tmp_path: Path) -> None:
    text = _write(NEXT_ITEM, tmp_path, "next-item").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("Best method per metric"))
    assert "**rerank** on HR@20 (0.2100)" in line
    assert "**rerank** on MRR@20" in line
    assert "**popular** on NDCG@20 (0.0300)" in line
    assert "positions" not in line and "seconds" not in line


def test_best_method_sentence_for_otto_uses_score_and_recalls(tmp_path: Path) -> None:
    text = _write(OTTO, tmp_path, "otto").read_text()
    assert "**covisit** on score (0.4523)" in text
    assert "**hybrid** on recall_clicks@20" in text
    assert "**covisit** on recall_orders@20" in text
    assert "sessions (" not in text


def test_best_method_sentence_names_every_tied_winner(tmp_path: Path) -> None:
    tied: Results = {"a": {"HR@20": 0.5}, "b": {"HR@20": 0.5}, "c": {"HR@20": 0.1}}
    text = _write(tied, tmp_path, "next-item").read_text()
    assert "**a** and **b** on HR@20 (0.5000)" in text


def test_same_results_give_byte_identical_pngs(tmp_path: Path) -> None:
    _write(OTTO, tmp_path / "one", "otto")
    _write(OTTO, tmp_path / "two", "otto")
    for name in ("report.md", "objectives.png", "score.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_missing_out_dir_is_created(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er" / "report"
    report = _write(NEXT_ITEM, out, "next-item")
    assert out.is_dir() and report.is_file() and (out / "metrics.png").is_file()


def test_empty_results_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="results is empty"):
        _write({}, tmp_path, "next-item")
    assert not any(tmp_path.iterdir())


def test_unknown_protocol_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown protocol 'recsys'.*next-item, otto"):
        _write(NEXT_ITEM, tmp_path, "recsys")


def test_command_with_backticks_cannot_break_the_code_block(tmp_path: Path) -> None:
    text = write_report(NEXT_ITEM, tmp_path, protocol="next-item", title="t",
                        command="echo ```x```").read_text()
    assert "````sh\necho ```x```\n````" in text


def test_importing_the_module_does_not_import_matplotlib() -> None:
    import subprocess

    code = "import sys, evaluation.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"
