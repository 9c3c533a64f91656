"""Events per second through one ``liverec worker``: Kafka in, Redis out.

    python benchmarks/worker_throughput.py [--sessions 20000] [--repeat 3] [--workers 1] [--rerank]

Needs the local Kafka and Redis (``deploy/local/services.sh up``). Generates synthetic
sessions, then per run publishes them to a fresh topic (4 partitions) with ``liverec replay --to
kafka://``, starts ``--workers`` worker processes on a fresh consumer group and key prefix, and
times them from the first batch stored in Redis until every event is (offsets in Redis cover
the topic). Group joining and start-up are outside the timed span; everything a worker does
per event (Faust consumption, decoding, the pipeline, the Redis script) is inside. Prints each
run and the median. The workers run the co-visitation recipe unless ``--rerank`` asks for the
River re-rankers too (the runtime's default): judging, learning and their store reads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
from bench_distributed import add_service_args, drop_state, show_logs, worker_phases

#: A run stops, with the workers' logs, when the stored offsets stay still this long.
STALL_S = 60.0


def liverec(*args: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-m", "liverec", *args], env=env, check=True,
                          capture_output=True, text=True).stdout


def applied(client: redis.Redis, prefix: str, topic: str, partitions: int) -> int:
    keys = [f"{prefix}offset:{topic}:{p}" for p in range(partitions)]
    return sum(int(v) for v in client.mget(keys) if v is not None)


def run_once(args: argparse.Namespace, env: dict[str, str], prefix: str, total: int,
             workdir: Path) -> float:
    """Workers on the topic ``{prefix}events`` (state under the same prefix in Redis)."""
    client = redis.Redis.from_url(args.redis)
    run_env = {**env, "LIVEREC_TOPIC_PREFIX": prefix, "LIVEREC_APP_ID": prefix.rstrip("-")}
    ports = [args.metrics_port + i for i in range(args.workers)]
    logs = [workdir / f"{prefix}worker-{port}.log" for port in ports]
    workers = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("wb") as out:  # the child keeps its own descriptor
            workers.append(subprocess.Popen([sys.executable, "-m", "liverec", "worker"],
                                            env={**run_env, "LIVEREC_METRICS_PORT": str(port)},
                                            stdout=out, stderr=subprocess.STDOUT))
    topic = f"{prefix}events"
    try:
        deadline = time.monotonic() + 120
        while applied(client, prefix, topic, args.partitions) == 0:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError("the workers did not start")
            time.sleep(0.01)
        started, first = time.perf_counter(), applied(client, prefix, topic,
                                                      args.partitions)
        last, moved = first, time.monotonic()
        while (done := applied(client, prefix, topic, args.partitions)) < total:
            if any(w.poll() is not None for w in workers):
                raise RuntimeError("a worker exited")
            if done != last:
                last, moved = done, time.monotonic()
            elif time.monotonic() - moved > STALL_S:
                raise RuntimeError(f"no progress for {STALL_S:.0f} s at {done:,} of "
                                   f"{total:,} events")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        for port in ports:
            print(f"  worker on :{port}, seconds per phase: {worker_phases(port)}")
        return (done - first) / elapsed
    except RuntimeError:
        show_logs(logs)
        raise
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(20)
        drop_state(args.redis, prefix, args.kafka)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rerank", action="store_true",
                        help="run the re-rankers in the workers (default: the recipe only)")
    parser.add_argument("--metrics-port", type=int, default=9190,
                        help="first worker's /metrics port (the next ones follow)")
    add_service_args(parser)
    args = parser.parse_args()
    env = {**os.environ, "LIVEREC_BUS": args.kafka, "LIVEREC_STORE": args.redis,
           "LIVEREC_PARTITIONS": str(args.partitions),
           "LIVEREC_RERANK": "true" if args.rerank else "false"}
    rates = []
    with tempfile.TemporaryDirectory() as workdir:
        data = Path(workdir) / "sessions.jsonl"
        liverec("generate", "--sessions", str(args.sessions), "--items", str(args.items),
                "--out", str(data), env=env)
        for run in range(args.repeat):
            topic_prefix = f"bench-{uuid.uuid4().hex[:8]}-"
            out = liverec("replay", str(data), "--to", args.kafka, "--quiet",
                          env={**env, "LIVEREC_TOPIC_PREFIX": topic_prefix})
            total = int(out.split("published ")[1].split(" events")[0].replace(",", ""))
            rate = run_once(args, env, topic_prefix, total, Path(workdir))
            rates.append(rate)
            print(f"run {run + 1}: {total:,} events, {rate:,.0f} events/s with "
                  f"{args.workers} worker(s)", flush=True)
    print(f"median {statistics.median(rates):,.0f} events/s over {args.repeat} runs "
          f"(range {min(rates):,.0f}-{max(rates):,.0f}); {args.workers} worker(s), "
          f"{args.partitions} partitions, {'re-rankers' if args.rerank else 'recipe'}, "
          f"cpus {os.cpu_count()}")


if __name__ == "__main__":
    main()
