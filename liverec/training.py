"""``liverec train``: sessions in, a sequence model file out, with a progress bar."""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from online_models.sequence.config import SequenceConfig
from online_models.sequence.train import train
from producers.readers import ReadReport, read_sessions


def run_train(args: argparse.Namespace) -> int:
    config = SequenceConfig(kind=args.model, backbone=args.backbone, dim=args.dim,
                            max_len=args.max_len, epochs=args.epochs,
                            batch_size=args.batch_size, learning_rate=args.learning_rate,
                            negatives=args.negatives, seed=args.seed,
                            cql_weight=args.cql_weight)
    started = time.perf_counter()
    report = ReadReport()
    ordered = [sorted(events, key=lambda e: e.ts)
               for _, events in read_sessions(args.data, strict=args.strict, report=report)]
    sessions = [[e.aid for e in events] for events in ordered]
    bad = f", {report.bad:,} bad lines skipped" if report.bad else ""
    if not args.quiet:
        print(f"read {args.data}: {len(sessions):,} sessions, "
              f"{sum(map(len, sessions)):,} events in {time.perf_counter() - started:.1f} s"
              f"{bad}", file=sys.stderr)
    bar = tqdm(total=config.epochs, desc=f"train {config.kind}", unit="epoch",
               disable=args.quiet, file=sys.stderr)

    def epoch(done: int, epochs: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")

    try:
        model, result = train(sessions, config, epoch,
                              types=[[e.type for e in events] for events in ordered])
    finally:
        bar.close()
    model.save(args.out)
    print(f"{config.kind}: {result.items:,} items, {result.windows:,} training windows, "
          f"{result.epochs} epochs in {result.seconds:.1f} s, final loss "
          f"{result.losses[-1]:.4f}; wrote {args.out}")
    return 0
