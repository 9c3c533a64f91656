"""What junk costs the state: memory per event of random items, against a shop's own traffic.

An attacker who gets past the door (a token per session, each session's event budget) can
still post events for random items. This script applies ``--events`` such events to the demo's
pipeline (sessions of ``--session-events`` each, a new session per budget, random aids over the
whole id space, random types) and, separately, as many generated shop events, and prints the
state each leaves: resident memory, sessions, items, co-visitation cells. With the door's
limits (docs/security.md) this gives the growth per hour one client address can cause.

    python benchmarks/junk.py --events 300000

With ``--days D`` the junk is spread over D days of event time instead, and the state is
printed as it goes: items and pairs nobody views again are forgotten after one to two
co-visitation epochs (``--epoch-half-lives``, 14 days each), so the state stops growing.

    python benchmarks/junk.py --events 1000000 --days 140 --epoch-half-lives 1
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import time
from collections.abc import Iterable

from liverec.runtime import pipeline_config
from liverec.settings import Settings
from online_models.covisitation import DAY_MS
from producers.generator import GeneratorConfig, generate_sessions
from stream.events import MAX_ID, Event
from stream.pipeline import PipelineConfig, SessionPipeline

T0 = 1_659_304_800_000


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def junk(n: int, per_session: int, seed: int, step_ms: int = 200) -> Iterable[Event]:
    rng = random.Random(seed)
    for i in range(n):
        # Sessions one after another, an event every ``step_ms`` (200: a client at its
        # budget's pace).
        yield Event(10**12 + i // per_session, rng.randrange(MAX_ID), T0 + i * step_ms,
                    rng.randrange(3))


def shop(n: int, seed: int) -> list[Event]:
    sessions = generate_sessions(GeneratorConfig(sessions=max(1, n // 17), items=40_000,
                                                 seed=seed))
    events = sorted((e for _, evs in sessions for e in evs), key=lambda e: e.ts)
    return events[:n]


def report(name: str, pipeline: SessionPipeline, grown: float, cpu: float) -> None:
    stats = pipeline.stats()
    n = stats["events"]
    print(f"{name:>6}: {n:>9,} events  {grown:8.1f} MiB ({grown * 1024 / n * 1000:6.0f} KiB "
          f"per 1,000 events)  {stats['sessions']:>7,} sessions  "
          f"{len(set().union(*pipeline.popularity.known.values())):>9,} items  "
          f"{stats['covis_cells']:>10,} cells  "
          f"{cpu / n * 1e6:5.0f} µs CPU/event", flush=True)


def measure(name: str, events: Iterable[Event], config: PipelineConfig,
            every: int = 0) -> None:
    """Apply ``events`` in batches of 1,000; report the state at the end (and every
    ``every`` events, if set)."""
    gc.collect()
    before = rss_mib()
    pipeline = SessionPipeline(config)
    started = time.process_time()
    batch: list[Event] = []
    for i, event in enumerate(events, 1):
        batch.append(event)
        if len(batch) == 1000:
            pipeline.apply(batch)
            batch.clear()
        if every and i % every == 0:
            day = (event.ts - T0) / DAY_MS
            report(f"day {day:.0f}", pipeline, rss_mib() - before, time.process_time() - started)
    pipeline.apply(batch)
    cpu = time.process_time() - started
    gc.collect()
    report(name, pipeline, rss_mib() - before, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--session-events", type=int, default=50,
                        help="events per junk session (a shopper's burst)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, default=0,
                        help="spread the junk over this many days of event time and print the "
                             "state ten times as it goes (no shop run)")
    parser.add_argument("--epoch-half-lives", type=int, default=None,
                        help="co-visitation epoch in 14-day half-lives (default: the setting)")
    args = parser.parse_args()
    config = pipeline_config(Settings())
    if args.epoch_half_lives is not None:
        config = dataclasses.replace(config, covis=dataclasses.replace(
            config.covis, epoch_half_lives=args.epoch_half_lives))
    epoch_days = config.covis.half_life_ms * config.covis.epoch_half_lives / DAY_MS
    rerank = "on" if config.rerank is not None else "off"
    print(f"{args.events:,} events each; the demo's pipeline (re-rankers {rerank}); "
          f"co-visitation epochs of {epoch_days:g} days")
    if args.days:
        step = int(args.days * DAY_MS / args.events)
        measure("junk", junk(args.events, args.session_events, args.seed, step), config,
                every=args.events // 10)
        return
    measure("shop", shop(args.events, args.seed), config)
    measure("junk", junk(args.events, args.session_events, args.seed), config)


if __name__ == "__main__":
    main()
