"""Redis's time per event in the worker's batch script, and the worker's time to encode it.

    python benchmarks/store_apply.py [--sessions 20000] [--batch 1000] [--repeat 3]

Needs the local Redis (``deploy/local/services.sh up``); no Kafka, no worker process. Generates
the sessions of ``benchmarks/worker_throughput.py``, applies them in time order to the
worker's journal-only pipeline in batches of ``--batch`` events, and sends each batch to
Redis with :meth:`RedisStore.apply_encoded`. Prints per event, medians of ``--repeat`` runs on
fresh key prefixes: Redis's CPU in the script (from ``INFO commandstats``, so other clients of the
same Redis do not count), the worker's encoding of the script's arguments, and, where the store
compacts row logs, Redis's time in compactions and the worker's in preparing them; and per
run, how much Redis's memory grew (the state of the whole run, sessions included).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import redis
from bench_distributed import add_service_args, drop_state

from distributed.batch import journaling_pipeline, take_for_store
from distributed.store import RedisStore
from producers.generator import GeneratorConfig, generate_sessions
from stream.events import Event
from stream.pipeline import PipelineConfig


def script_usec(client: redis.Redis) -> float:
    """Microseconds Redis has spent in scripts (EVAL and EVALSHA) since it started."""
    stats = client.info("commandstats")
    return sum(float(stats.get(f"cmdstat_{name}", {}).get("usec", 0))
               for name in ("eval", "evalsha"))


def run_once(url: str, events: list[Event], batch: int,
             compact_min_bytes: int | None) -> dict[str, float]:
    prefix = f"bench-store-{uuid.uuid4().hex[:8]}-"
    store = RedisStore.from_url(url, prefix)
    if compact_min_bytes is not None:
        store.compact_min_bytes = compact_min_bytes
    client = store.client
    pipeline = journaling_pipeline(PipelineConfig())
    encode_s = compact_s = 0.0
    script_before = script_usec(client)
    memory_before = int(client.info("memory")["used_memory"])
    compacted = 0
    try:
        for start in range(0, len(events), batch):
            chunk = events[start:start + batch]
            touched = pipeline.apply(chunk)
            clock = time.perf_counter()
            _, _, encoded = take_for_store(pipeline, touched, store,
                                           {("events", 0): (start, start + len(chunk))},
                                           len(chunk))
            encode_s += time.perf_counter() - clock
            if not store.apply_encoded(encoded):
                raise RuntimeError("a fresh prefix refused a batch")
            if due := encoded.compact:
                clock = time.perf_counter()
                compacted += store.compact(due)
                compact_s += time.perf_counter() - clock
        script_s = (script_usec(client) - script_before) / 1e6
        memory = int(client.info("memory")["used_memory"]) - memory_before
    finally:
        drop_state(url, prefix)
    n = len(events)
    return {"redis_us": script_s / n * 1e6, "encode_us": encode_s / n * 1e6,
            "compact_us": compact_s / n * 1e6, "compactions": compacted,
            "memory_mib": memory / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compact-min-bytes", type=int, default=None,
                        help="the store's compaction floor (default: the store's own)")
    add_service_args(parser)
    args = parser.parse_args()
    events = [e for _, session in generate_sessions(GeneratorConfig(args.sessions, args.items))
              for e in session]
    events.sort(key=lambda e: e.ts)
    runs = []
    for i in range(args.repeat):
        result = run_once(args.redis, events, args.batch, args.compact_min_bytes)
        runs.append(result)
        print(f"run {i + 1}: Redis {result['redis_us']:.1f} µs/event in the script, encoding "
              f"{result['encode_us']:.1f} µs/event, compactions {result['compactions']:,.0f} "
              f"({result['compact_us']:.1f} µs/event, both sides); Redis memory "
              f"+{result['memory_mib']:.0f} MiB")
    print(f"median of {args.repeat} on {len(events):,} events in batches of {args.batch:,}: "
          f"Redis {statistics.median(r['redis_us'] for r in runs):.1f} µs/event, encoding "
          f"{statistics.median(r['encode_us'] for r in runs):.1f} µs/event, compactions "
          f"{statistics.median(r['compact_us'] for r in runs):.1f} µs/event")


if __name__ == "__main__":
    main()
