"""The distributed runtime on one host, as processes: workers started, killed, paused and
resumed at will, replays into it, and the check that what it stored equals a batch
recomputation of the same log and the embedded runtime's lists.

The crash drills (``tests/test_drills.py``) and the chaos run (``benchmarks/chaos.py``) drive
it against the local Kafka and Redis (``deploy/local/services.sh``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed.serving import SharedModels, lists_from_store, load_states
from distributed.store import RedisStore
from liverec.runtime import pipeline_config
from liverec.settings import Settings
from online_models.covisitation_batch import batch_covisitation
from online_models.rerank import Reranker
from online_models.rows import export_rows
from producers.ordering import time_ordered
from producers.readers import read_events
from stream.events import Event
from stream.pipeline import PipelineConfig, Recommendations, SessionPipeline, session_lists

_PORT_LINE = re.compile(rb"health and metrics on http://[^ ]+:(\d+)/ ")


def scrape(port: int) -> dict[str, float]:
    """A worker's ``/metrics``: sample (with its labels, if any) → value."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines() if line and not line.startswith("#")}


@dataclass
class Worker:
    """One ``liverec worker`` process, started with the defaults (its metrics port is the
    one it prints)."""

    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None
    last: dict[str, float] = field(default_factory=dict)
    """Its metrics as last scraped."""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def metrics_port(self, timeout_s: float = 60.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.port is None:
            found = _PORT_LINE.search(self.log.read_bytes())
            if found:
                self.port = int(found.group(1))
                break
            if not self.alive:
                raise RuntimeError(f"worker {self.process.pid} exited: {self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.process.pid} printed no metrics port")
            time.sleep(0.1)
        return self.port

    def metrics(self) -> dict[str, float]:
        self.last = scrape(self.metrics_port())
        return self.last

    def processed(self) -> int:
        """Events this process applied (and stored) so far."""
        return int(self.metrics().get("liverec_events_processed_total", 0))

    def wait_processing(self, timeout_s: float = 120.0) -> int:
        """Wait until the process has stored events of its own; return how many."""
        deadline = time.monotonic() + timeout_s
        while (count := self.processed()) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.process.pid} stored no events")
            time.sleep(0.2)
        return count

    def probe(self, path: str) -> tuple[int, dict[str, Any]]:
        """A health path's status and JSON answer (``/healthz``, ``/readyz``)."""
        url = f"http://127.0.0.1:{self.metrics_port()}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def wait_probe(self, path: str, check: str, passing: bool,
                   timeout_s: float = 30.0) -> tuple[int, dict[str, Any]]:
        """Wait until ``path`` reports its check ``check`` passing (or failing); return the
        answer that did."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, body = self.probe(path)
            if (body["checks"][check] == "ok") == passing:
                return status, body
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} check {check} still {body['checks'][check]!r}")
            time.sleep(0.2)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the group, no last commit."""
        self.process.kill()
        self.process.wait(30)

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Comparison:
    """What the deployment stored against the batch matrices and the embedded lists."""

    events: int
    applied: int
    """Events the store counts as applied (each batch's count, in the batch's script)."""
    rows_differing: list[int]
    sessions_differing: list[int]
    sessions: int

    @property
    def lost(self) -> int:
        return max(0, self.events - self.applied)

    @property
    def twice(self) -> int:
        return max(0, self.applied - self.events)

    @property
    def equal(self) -> bool:
        return not (self.lost or self.twice or self.rows_differing or self.sessions_differing)


class LocalCluster:
    """Workers of one deployment (its own topic prefix, group and Redis keys)."""

    def __init__(self, bus: str, store: str, prefix: str, workdir: Path, *,
                 partitions: int = 4, env: dict[str, str] | None = None) -> None:
        self.prefix = prefix
        self.workdir = workdir
        self.env = {**os.environ, "LIVEREC_BUS": bus, "LIVEREC_STORE": store,
                    "LIVEREC_TOPIC_PREFIX": prefix, "LIVEREC_APP_ID": prefix.rstrip("-"),
                    "LIVEREC_PARTITIONS": str(partitions), **(env or {})}
        self.env.pop("LIVEREC_METRICS_PORT", None)  # the defaults: 9108 or the next free
        self.partitions = partitions
        self.topic = f"{prefix}events"
        self.store = RedisStore.from_url(store, prefix,
                                         epoch_shift=self.settings.covis_epoch_half_lives)
        self.workers: list[Worker] = []

    @property
    def settings(self) -> Settings:
        return Settings.model_validate({k[len("LIVEREC_"):].lower(): v
                                        for k, v in self.env.items()
                                        if k.startswith("LIVEREC_")})

    def start_worker(self) -> Worker:
        log = self.workdir / f"worker-{len(self.workers)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "liverec", "worker"],
                                       env=self.env, stdout=out, stderr=subprocess.STDOUT)
        worker = Worker(process, log)
        self.workers.append(worker)
        return worker

    def wait_joined(self, timeout_s: float = 90.0) -> None:
        """Wait until the group has given every running worker partitions, all of them."""
        deadline = time.monotonic() + timeout_s
        while True:
            alive = [w for w in self.workers if w.alive]
            counts = [int(w.metrics().get("liverec_assigned_partitions", 0)) for w in alive]
            if counts and min(counts) > 0 and sum(counts) == self.partitions:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the group did not settle: partitions per worker {counts}")
            time.sleep(0.5)

    def replay(self, data: Path, speed: str = "max") -> subprocess.Popen[str]:
        """Start ``liverec replay`` of ``data`` into the deployment's topic (what its Kafka
        client logs goes to ``replay.log`` in the working directory)."""
        with open(self.workdir / "replay.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "liverec", "replay", str(data),
                                     "--to", self.env["LIVEREC_BUS"], "--speed", speed,
                                     "--quiet"], env=self.env, stdout=subprocess.PIPE,
                                    stderr=log, text=True)

    @staticmethod
    def published(replay: subprocess.Popen[str], timeout_s: float = 600.0) -> int:
        """Wait for a replay to end; the events it published (all acknowledged)."""
        out, _ = replay.communicate(timeout=timeout_s)
        if replay.returncode != 0 or "published " not in out:
            raise RuntimeError(f"the replay failed ({replay.returncode}): {out[-500:]}")
        return int(out.split("published ")[1].split(" events")[0].replace(",", ""))

    def stored_offsets(self) -> int:
        """Messages of the topic the store has applied (valid or sent to the dead letters)."""
        return sum(self.store.stored_offset(self.topic, p) or 0 for p in range(self.partitions))

    def wait_drained(self, messages: int, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.stored_offsets() < messages:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.stored_offsets():,} of {messages:,} messages "
                                   f"applied after {timeout_s:.0f} s")
            time.sleep(0.5)

    def compare(self, data: Path) -> Comparison:
        """The stored matrices against the batch definition over ``data`` (as ``liverec covis
        --mode batch`` gives them), and every session's lists against the embedded runtime's:
        the recipe's, and the stored re-rankers' over the embedded state."""
        events = list(time_ordered(read_events(data)))
        config = pipeline_config(self.settings, distributed=True)
        stored = {row["aid"]: row for row in self.store.export()}
        batch = {row["aid"]: row for row in export_rows(*batch_covisitation(events,
                                                                            config.covis))}
        differing = sorted(int(aid) for aid in stored.keys() | batch.keys()  # type: ignore[call-overload]
                           if stored.get(aid) != batch.get(aid))
        sessions = sorted({e.session for e in events})
        return Comparison(len(events), self.store.events(), differing,
                          self._lists_differing(events, sessions, config), len(sessions))

    def _lists_differing(self, events: list[Event], sessions: list[int],
                         config: PipelineConfig) -> list[int]:
        embedded = SessionPipeline(PipelineConfig(covis=config.covis,
                                                  session_ttl_ms=config.session_ttl_ms))
        embedded.apply(events)
        states = load_states(self.store, sessions, config.covis.window)
        lifetime = config.session_lifetime_ms
        expired = embedded.sessions.watermark - embedded.sessions.ttl_ms
        differing = {s for s, recs in lists_from_store(self.store, states, config.list_size,
                                                       lifetime_ms=lifetime).items()
                     if not _same(recs, embedded.recommendations(s))}
        if config.rerank is not None:
            models = SharedModels(self.store, Reranker(config.rerank))
            models.start()  # the newest snapshot the workers saved
            reranker = models.reranker
            served = lists_from_store(self.store, states, config.list_size, reranker,
                                      lifetime_ms=lifetime)
            differing |= {s for s, recs in served.items()
                          if not _same(recs, self._embedded_lists(embedded, s, reranker,
                                                                  expired))}
        return sorted(differing)

    @staticmethod
    def _embedded_lists(embedded: SessionPipeline, session: int, reranker: Reranker,
                        expired_before: int) -> Recommendations:
        return session_lists(session, embedded.sessions.get(session), embedded.covis,
                             embedded.popularity, embedded.config.list_size, reranker,
                             expired_before=expired_before)

    def close(self) -> None:
        """Stop every worker (SIGCONT first: a paused one cannot die) and clear the keys."""
        for worker in self.workers:
            if worker.alive:
                worker.signal(signal.SIGCONT)
                worker.kill()
        self.store.clear()


def _same(a: Recommendations, b: Recommendations) -> bool:
    """Equal lists, versions and the reasons given for each item."""
    return a == b and a.why == b.why
