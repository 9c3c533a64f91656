"""Markdown + PNG report of offline evaluation results, one section per comparison of methods.

A table alone hides how close methods are; a grouped bar chart per objective makes the gaps
visible at a glance, and a Markdown file with relative image links renders on GitHub as-is.
matplotlib is imported lazily (with the headless Agg backend) so importing this module, e.g.
from the CLI, stays cheap when no report is requested.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, float | int]]

PROTOCOLS = ("next-item", "otto")
#: Bookkeeping keys: shown in the table, never plotted nor ranked (they are not quality).
NON_METRIC = frozenset({"positions", "sessions", "seconds"})
_DPI = 150
_BAR_SIZE = (8.0, 4.5)  # inches; fixed so the PNG size does not depend on the data


def write_report(results: Results, out_dir: Path, *, protocol: str, title: str, command: str,
                 details: dict[str, str] | None = None) -> Path:
    """Write out_dir/report.md and PNGs; return the path of report.md."""
    if not results:
        raise ValueError("write_report: results is empty; evaluate at least one method")
    if protocol not in PROTOCOLS:
        raise ValueError(f"write_report: unknown protocol {protocol!r}; expected one of "
                         f"{', '.join(PROTOCOLS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = _keys(results)
    images = _plot(results, keys, out_dir, protocol)
    lines = [f"# {title}", "", "Produced by:", "", *_code_block(command), ""]
    if details:
        lines += [f"- **{k}**: {v}" for k, v in details.items()] + [""]
    lines += _table(results, keys) + [""]
    best = _best_sentence(results, keys)
    if best:
        lines += [best, ""]
    for path in images:  # one paragraph each, so they stack instead of sitting side by side
        lines += [f"![{path.stem}]({path.name})", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return report


def format_value(key: str, value: float | int | None) -> str:
    """Counts with thousands separators, seconds to 0.1 s, metrics to 4 decimals.

    >>> [format_value("positions", 12455), format_value("seconds", 1.234)]
    ['12,455', '1.2']
    >>> format_value("HR@20", 0.09)
    '0.0900'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key == "seconds":
        return f"{value:.1f}"
    if isinstance(value, int) or key in NON_METRIC:
        return f"{int(value):,}"
    return f"{value:.4f}"


def _keys(results: Results) -> list[str]:
    """Union of the methods' keys in first-seen order, so ragged results still tabulate."""
    return list(dict.fromkeys(k for row in results.values() for k in row))


def _code_block(text: str) -> list[str]:
    """Fence longer than any backtick run in ``text`` so a command can never break out."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}sh", text, fence]


def _table(results: Results, keys: list[str]) -> list[str]:
    """Methods as rows, keys as right-aligned columns; a missing value shows as a dash."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| method | " + " | ".join(cell(k) for k in keys) + " |",
             "|:--" + "|--:" * len(keys) + "|"]
    for method, row in results.items():
        values = [format_value(k, row.get(k)) for k in keys]
        lines.append(f"| {cell(method)} | " + " | ".join(values) + " |")
    return lines


def _best_sentence(results: Results, keys: list[str]) -> str:
    """Name the best method (higher is better) for every metric; ties name every winner."""
    parts = []
    for key in keys:
        if key in NON_METRIC:
            continue
        scored = {m: float(r[key]) for m, r in results.items()
                  if key in r and not math.isnan(float(r[key]))}
        if not scored:
            continue
        top = max(scored.values())
        winners = " and ".join(f"**{m}**" for m, v in scored.items() if v == top)
        parts.append(f"{winners} on {key} ({format_value(key, top)})")
    return "Best method per metric: " + "; ".join(parts) + "." if parts else ""


def _find(keys: list[str], prefix: str) -> str | None:
    """First key starting with ``prefix`` (e.g. ``HR@`` matches ``HR@20`` whatever the cut-off)."""
    return next((k for k in keys if k.startswith(prefix)), None)


def _plot(results: Results, keys: list[str], out_dir: Path, protocol: str) -> list[Path]:
    """Draw the protocol's charts; groups whose metric is absent from every method are skipped."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display, no GUI toolkit, same pixels everywhere
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    if protocol == "next-item":
        groups = [(k, k) for p in ("HR@", "MRR@", "NDCG@") if (k := _find(keys, p))]
        if groups:
            paths.append(_grouped(plt, results, groups, out_dir / "metrics.png",
                                  "Next-item metrics per method", "metric"))
        return paths
    groups = [(name, k) for name in ("clicks", "carts", "orders")
              if (k := _find(keys, f"recall_{name}@"))]
    if groups:
        paths.append(_grouped(plt, results, groups, out_dir / "objectives.png",
                              "OTTO recall per objective", "objective (recall)"))
    if "score" in keys:
        paths.append(_score(plt, results, out_dir / "score.png"))
    return paths


def _grouped(plt: Any, results: Results, groups: Sequence[tuple[str, str]], path: Path,
             title: str, xlabel: str) -> Path:
    """One group of bars per metric, one bar (and colour, in the legend) per method."""
    fig, ax = plt.subplots(figsize=_BAR_SIZE)
    n = len(results)
    width = 0.8 / n
    top = 0.0
    for i, (method, row) in enumerate(results.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        ys = [float(row.get(key, math.nan)) for _, key in groups]
        bars = ax.bar(xs, ys, width, label=method)
        ax.bar_label(bars, labels=["" if math.isnan(y) else f"{y:.3f}" for y in ys],
                     padding=2, fontsize=7)
        top = max([top, *(y for y in ys if not math.isnan(y))])
    ax.set_xticks(range(len(groups)), [label for label, _ in groups])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("value (higher is better)")
    ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
    ax.set_title(title)
    ax.legend(title="method", fontsize=8)
    return _save(plt, fig, path)


def _score(plt: Any, results: Results, path: Path) -> Path:
    """Horizontal bars of the weighted OTTO score, first method on top, value at each bar end."""
    methods = list(results)
    scores = [float(results[m].get("score", math.nan)) for m in methods]
    fig, ax = plt.subplots(figsize=(8.0, max(2.5, 0.5 * len(methods) + 1.5)))
    bars = ax.barh(methods, scores, color="tab:blue")
    ax.bar_label(bars, labels=["" if math.isnan(s) else f"{s:.4f}" for s in scores],
                 padding=3, fontsize=8)
    ax.invert_yaxis()
    finite = [s for s in scores if not math.isnan(s)]
    ax.set_xlim(0, max(finite) * 1.2 if finite and max(finite) > 0 else 1.0)
    ax.set_xlabel("weighted score (0.10·clicks + 0.30·carts + 0.60·orders recall)")
    ax.set_ylabel("method")
    ax.set_title("OTTO weighted score per method")
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """150 dpi, tight layout, no Software tag so identical results give identical bytes."""
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI, format="png", metadata={"Software": None})
    plt.close(fig)
    return path
