"""Choose the re-rankers' settings by cross-validation over time slices of the training file,
never by the test file: each variant runs next-item on ``--slice`` 1, 2, ... of the training
file (the sessions ending on the N-th last day are the test, the earlier ones the training,
as the published split was cut), and the variant with the best mean HR@20 (then MRR@20) is
chosen. ``vsknn`` runs on the same slices for the margin. With ``--test``, the chosen
variant and the defaults are then scored once on the open split, for the record.

    python benchmarks/tune_slices.py --train ../shared/data/yoochoose-100k/train_tr.tsv \\
        --slices 1,2,3 [--test ../shared/data/yoochoose-100k/valid.tsv]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from evaluation.evaluate import Result, evaluate_next_item, run_each
from evaluation.protocols import day_slice
from online_models.rerank import RerankConfig
from producers.readers import read_events
from stream.events import Event

#: What decides HR@20 is which candidates the prior brings (the model re-ranks within them):
#: how many neighbours per row, how many recent items' rows and successors; then how the
#: model learns.
VARIANTS: dict[str, dict[str, float | int]] = {
    "defaults": {},
    "neighbours=30": {"neighbours": 30},
    "neighbours=40": {"neighbours": 40},
    "history=3": {"history": 3},
    "history=8": {"history": 8},
    "successor_items=1": {"successor_items": 1},
    "successor_items=5": {"successor_items": 5},
    "depth=50": {"depth": 50},
    "learning_rate=0.01": {"learning_rate": 0.01},
    "learning_rate=0.0025": {"learning_rate": 0.0025},
}
FIGURES = ("HR@20", "MRR@20", "NDCG@20")


def _variant(name: str) -> RerankConfig:
    return dataclasses.replace(RerankConfig(), **VARIANTS[name])  # type: ignore[arg-type]


def _on(train: list[Event], test: list[Event], names: list[str], jobs: int
        ) -> dict[str, Result]:
    """Each variant (and ``vsknn``) on one train/test pair."""
    def run(name: str) -> Result:
        if name == "vsknn":
            return evaluate_next_item(["vsknn"], train, test)["vsknn"]
        return evaluate_next_item(["rerank"], train, test, rerank=_variant(name))["rerank"]
    return run_each(names, run, jobs)


def _row(name: str, result: Result) -> str:
    return f"{name:<22}" + "".join(f"{float(result[f]):>10.4f}" for f in FIGURES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--slices", default="1,2", help="comma-separated days back")
    parser.add_argument("--test", type=Path, help="the open test file, scored after choosing")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {', '.join(unknown)}")
    started = time.perf_counter()
    events = list(read_events(args.train))
    per_slice: dict[int, dict[str, Result]] = {}
    for back in (int(s) for s in args.slices.split(",")):
        train, test = day_slice(events, back)
        per_slice[back] = results = _on(train, test, [*names, "vsknn"], args.jobs)
        print(f"slice {back}: {len(train):,} training events, {len(test):,} test events")
        print(f"{'variant':<22}" + "".join(f"{f:>10}" for f in FIGURES))
        for name, result in results.items():
            print(_row(name, result))
    mean = {name: {f: sum(float(r[name][f]) for r in per_slice.values()) / len(per_slice)
                   for f in FIGURES} for name in [*names, "vsknn"]}
    print(f"mean over slices {args.slices}:")
    for name, figures in sorted(mean.items(), key=lambda kv: (-kv[1]["HR@20"],
                                                              -kv[1]["MRR@20"])):
        margin = "" if name == "vsknn" else "  vs vsknn HR {:+.1%} MRR {:+.1%}".format(
            figures["HR@20"] / mean["vsknn"]["HR@20"] - 1,
            figures["MRR@20"] / mean["vsknn"]["MRR@20"] - 1)
        print(_row(name, figures) + margin)
    chosen = max(names, key=lambda n: (mean[n]["HR@20"], mean[n]["MRR@20"]))
    print(f"chosen: {chosen} {VARIANTS[chosen]}")
    if args.test is not None:
        test_events = list(read_events(args.test))
        final = _on(events, test_events, list(dict.fromkeys([chosen, "defaults"])), args.jobs)
        print(f"open split ({args.test.name}):")
        for name, result in final.items():
            print(_row(name, result))
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
