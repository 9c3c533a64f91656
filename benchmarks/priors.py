"""Does each objective's prior suit its objective? Recall@20 of every objective's labels
against every objective's prior list, on generated OTTO-like sessions (OTTO protocol).

The ``prior`` method serves the re-rankers' candidates in each objective's hand-made order,
before any learning (``online_models/candidates.py``). Each row is an objective's labels,
each column the list a prior made; the diagonal should be the best of its row.

    python benchmarks/priors.py --sessions 100000 --items 50000
"""

from __future__ import annotations

import argparse
import time

from evaluation.evaluate import final_lists
from evaluation.methods import make_method
from evaluation.protocols import otto_split, truth_sets
from online_models.rerank import OBJECTIVES
from producers.generator import GeneratorConfig, generate_sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-days", type=float, default=7.0)
    args = parser.parse_args()
    started = time.perf_counter()
    config = GeneratorConfig(sessions=args.sessions, items=args.items, seed=args.seed)
    split = otto_split(generate_sessions(config), args.test_days)
    method = make_method("prior")
    method.train(split.train)
    lists = final_lists(method, split.test, learn=False)
    hits = {(o, p): 0 for o in OBJECTIVES for p in OBJECTIVES}
    wanted = dict.fromkeys(OBJECTIVES, 0)
    for session, labels in split.labels.items():
        served = lists.get(session)
        truth = truth_sets(labels)
        for o in OBJECTIVES:
            if not truth[o]:
                continue
            wanted[o] += min(20, len(truth[o]))
            if served is None:
                continue
            for p, listed in zip(OBJECTIVES, (served.clicks, served.carts, served.orders),
                                 strict=True):
                hits[(o, p)] += len(set(listed[:20]) & set(truth[o]))
    print(f"{len(split.train):,} training events, {len(split.labels):,} test sessions, "
          f"{time.perf_counter() - started:.0f} s")
    print(f"{'labels':<8}" + "".join(f"{p + ' prior':>14}" for p in OBJECTIVES))
    for o in OBJECTIVES:
        cells = [hits[(o, p)] / wanted[o] if wanted[o] else 0.0 for p in OBJECTIVES]
        print(f"{o:<8}" + "".join(f"{c:>14.4f}" for c in cells))


if __name__ == "__main__":
    main()
