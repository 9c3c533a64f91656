"""Random faults under a steady replay, for longer than CI can afford; then the check.

    python benchmarks/chaos.py --minutes 30 [--workers 2] [--rate 300] [--seed 1]

Needs the local Kafka and Redis (``deploy/local/services.sh up``; the faults restart them
through that script). A generated log is replayed into a topic of its own at a pace that
lasts ``--minutes`` (about ``--rate`` events/s) through ``--workers`` workers on four
partitions. Meanwhile, every 10 to 40 s, one fault strikes at random: a worker killed with
SIGKILL (a replacement starts at once), a worker stopped with SIGSTOP for 10 to 20 s (past the
group's 8 s session timeout, so it comes back as a zombie) then continued, Redis shut down
and restarted, or the Kafka broker stopped and restarted. Once the replay ends and every
message is applied, the Redis matrices are compared with the batch recomputation and every
session's lists with the embedded runtime's; it prints the faults survived, the events, the
events lost and the events counted twice, and exits 1 if anything differs.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import redis

from liverec.local_cluster import LocalCluster

SERVICES = Path(__file__).resolve().parents[1] / "deploy" / "local" / "services.sh"
FAULTS = ("kill -9", "stop/continue", "redis restart", "kafka restart")


def services(*args: str) -> None:
    subprocess.run([str(SERVICES), *args], check=True, capture_output=True, timeout=180)


class Chaos:
    """Strikes faults at random until told to stop."""

    def __init__(self, cluster: LocalCluster, redis_url: str, rng: random.Random) -> None:
        self.cluster = cluster
        self.redis_url = redis_url
        self.rng = rng
        self.survived: Counter[str] = Counter()
        self.stop = threading.Event()
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"  {time.monotonic() - self.started:7.1f} s  {text}", flush=True)

    def run(self) -> None:
        strike = {"kill -9": self.kill, "stop/continue": self.pause,
                  "redis restart": self.restart_redis, "kafka restart": self.restart_kafka}
        while not self.stop.wait(self.rng.uniform(10, 40)):
            fault = self.rng.choice(FAULTS)
            self.say(fault)
            strike[fault]()
            self.survived[fault] += 1

    def kill(self) -> None:
        victim = self.rng.choice([w for w in self.cluster.workers if w.alive])
        victim.kill()
        self.cluster.start_worker().metrics_port()

    def pause(self) -> None:
        victim = self.rng.choice([w for w in self.cluster.workers if w.alive])
        victim.signal(signal.SIGSTOP)
        self.stop.wait(self.rng.uniform(10, 20))
        victim.signal(signal.SIGCONT)

    def restart_redis(self) -> None:
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(self.redis_url).shutdown()
        time.sleep(self.rng.uniform(1, 5))
        services("up")

    def restart_kafka(self) -> None:
        services("stop", "kafka")
        time.sleep(self.rng.uniform(1, 5))
        services("up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long the replay lasts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=300.0, help="events per second")
    parser.add_argument("--seed", type=int, default=1, help="of the log and of the faults")
    parser.add_argument("--kafka", default="kafka://127.0.0.1:9092")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    services("up")
    workdir = Path(tempfile.mkdtemp(prefix="liverec-chaos-"))
    data = workdir / "sessions.jsonl"
    sessions = max(100, int(args.rate * args.minutes * 60 / 17))  # ~17 events a session
    subprocess.run([sys.executable, "-m", "liverec", "generate", "--sessions", str(sessions),
                    "--items", str(max(1000, sessions // 5)), "--seed", str(args.seed),
                    "--out", str(data)], check=True, capture_output=True)
    first = last = None
    with open(data, "rb") as lines:
        for line in lines:
            stamps = [e["ts"] for e in orjson.loads(line)["events"]]
            first = min(stamps) if first is None else min(first, min(stamps))
            last = max(stamps) if last is None else max(last, max(stamps))
    assert first is not None and last is not None
    speed = (last - first) / 1000 / (args.minutes * 60)
    prefix = f"chaos-{uuid.uuid4().hex[:8]}-"
    cluster = LocalCluster(args.kafka, args.redis, prefix, workdir)
    chaos = Chaos(cluster, args.redis, random.Random(args.seed))
    print(f"chaos: {args.workers} workers, 4 partitions, {sessions:,} sessions replayed over "
          f"{args.minutes:g} min ({speed:,.0f}x real time); logs in {workdir}", flush=True)
    try:
        for _ in range(args.workers):
            cluster.start_worker().metrics_port()
        cluster.wait_joined()
        replay = cluster.replay(data, f"{speed:.3f}")
        striker = threading.Thread(target=chaos.run, daemon=True)
        striker.start()
        total = cluster.published(replay, timeout_s=args.minutes * 60 * 3 + 600)
        chaos.stop.set()
        striker.join()
        chaos.say(f"replay done: {total:,} events published; waiting for the workers")
        cluster.wait_drained(total, timeout_s=900)
        chaos.say("every message applied; comparing with batch and embedded")
        result = cluster.compare(data)
    finally:
        chaos.stop.set()
        cluster.close()
    faults = sum(chaos.survived.values())
    print(f"faults survived      {faults}  ("
          + ", ".join(f"{name} {chaos.survived[name]}" for name in FAULTS) + ")")
    print(f"events               {result.events:,}")
    print(f"events lost          {result.lost:,}")
    print(f"events counted twice {result.twice:,}")
    print(f"rows differing       {len(result.rows_differing):,} (of the batch matrices)")
    print(f"sessions differing   {len(result.sessions_differing):,} of {result.sessions:,} "
          "(lists against the embedded runtime)")
    print("equal: yes" if result.equal else "equal: NO")
    return 0 if result.equal else 1


if __name__ == "__main__":
    sys.exit(main())
