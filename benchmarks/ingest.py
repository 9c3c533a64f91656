"""Pipeline ingest on one core: events/s and peak memory per million events.

    python benchmarks/ingest.py [--events 1000000] [--repeat 3]

Generates synthetic OTTO-like sessions (or reads ``--data FILE``), orders them by time, then
feeds them to :class:`stream.pipeline.SessionPipeline` in batches of ``--batch`` events, as the
runner does. Only ``apply`` is timed. Memory is the growth of the process's peak RSS during
ingest, per million events, from a fresh process (``--repeat`` runs each in its own process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def one_run(args: argparse.Namespace) -> dict[str, float]:
    from liverec.sources import generated_events, ordered_file_events
    from stream.pipeline import PipelineConfig, SessionPipeline

    if args.data:
        events = list(ordered_file_events(Path(args.data))[0])
    else:
        # ~17.2 events per generated session; over-generate then cut to --events.
        events = generated_events(args.events // 16 + 1, args.items, args.seed)[: args.events]
    pipeline = SessionPipeline(PipelineConfig())
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    batch = args.batch
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        pipeline.apply(events[i:i + batch])
    seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lists_started = time.perf_counter()
    sessions = pipeline.sessions.recent_sessions(2000)
    for s in sessions:
        pipeline.recommendations(s)
    per_list_us = (time.perf_counter() - lists_started) / max(1, len(sessions)) * 1e6
    return {
        "events": len(events),
        "seconds": seconds,
        "events_per_s": len(events) / seconds,
        "peak_rss_growth_mib_per_m": (rss_after - rss_before) / 1024 / (len(events) / 1e6),
        "list_refresh_us": per_list_us,
        **{k: float(v) for k, v in pipeline.stats().items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--data", help="replay this file instead of generated sessions")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
        print(json.dumps(one_run(args)))
        return
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]],
                             check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    first = runs[0]
    print(f"pipeline ingest, {int(first['events']):,} events, batch {args.batch}, one core, "
          f"{args.repeat} runs (median [min, max])")

    def show(key: str, label: str, fmt: str) -> None:
        values = [r[key] for r in runs]
        print(f"  {label:<34} {format(statistics.median(values), fmt):>12}  "
              f"[{format(min(values), fmt)}, {format(max(values), fmt)}]")

    show("events_per_s", "events/s", ",.0f")
    show("peak_rss_growth_mib_per_m", "peak RSS growth, MiB per 1M events", ",.0f")
    show("list_refresh_us", "one session's 3 lists, µs", ",.0f")
    print(f"  state after ingest: {int(first['sessions']):,} sessions, {int(first['items']):,} "
          f"items, {int(first['covis_cells']):,} co-visitation cells, "
          f"{int(first['covis_pruned_rows']):,} row prunings")


if __name__ == "__main__":
    main()
