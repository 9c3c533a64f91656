"""What junk costs the state: memory per event of random items, against a shop's own traffic.

An attacker who gets past the door (a token per session, each session's event budget) can
still post events for random items. This script applies ``--events`` such events to the demo's
pipeline (sessions of ``--session-events`` each, a new session per budget, random aids over the
whole id space, random types) and, separately, as many generated shop events, and prints the
state each leaves: resident memory, sessions, items, co-visitation cells. With the door's
limits (docs/security.md) this gives the growth per hour one client address can cause.

    python benchmarks/junk.py --events 300000
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Iterable

from liverec.runtime import pipeline_config
from liverec.settings import Settings
from producers.generator import GeneratorConfig, generate_sessions
from stream.events import MAX_ID, Event
from stream.pipeline import SessionPipeline

T0 = 1_659_304_800_000


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def junk(n: int, per_session: int, seed: int) -> Iterable[Event]:
    rng = random.Random(seed)
    for i in range(n):
        # One event a second per session, sessions one after another: a client at its
        # budget's pace.
        yield Event(10**12 + i // per_session, rng.randrange(MAX_ID), T0 + i * 200,
                    rng.randrange(3))


def shop(n: int, seed: int) -> list[Event]:
    sessions = generate_sessions(GeneratorConfig(sessions=max(1, n // 17), items=40_000,
                                                 seed=seed))
    events = sorted((e for _, evs in sessions for e in evs), key=lambda e: e.ts)
    return events[:n]


def measure(name: str, events: Iterable[Event]) -> dict[str, float]:
    gc.collect()
    before = rss_mib()
    pipeline = SessionPipeline(pipeline_config(Settings()))
    started = time.process_time()
    batch: list[Event] = []
    for event in events:
        batch.append(event)
        if len(batch) == 1000:
            pipeline.apply(batch)
            batch.clear()
    pipeline.apply(batch)
    cpu = time.process_time() - started
    gc.collect()
    stats = pipeline.stats()
    grown = rss_mib() - before
    n = stats["events"]
    items = len(pipeline.popularity.known)
    print(f"{name:>6}: {n:>9,} events  {grown:8.1f} MiB ({grown * 1024 / n * 1000:6.0f} KiB "
          f"per 1,000 events)  {stats['sessions']:>7,} sessions  {items:>9,} items  "
          f"{stats['covis_cells']:>10,} cells  {cpu / n * 1e6:5.0f} µs CPU/event")
    del pipeline
    return {"mib": grown, "events": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--session-events", type=int, default=50,
                        help="events per junk session (a shopper's burst)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.events:,} events each; the demo's pipeline (re-rankers on)")
    measure("shop", shop(args.events, args.seed))
    measure("junk", junk(args.events, args.session_events, args.seed))


if __name__ == "__main__":
    main()
