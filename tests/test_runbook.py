"""The README's runbook, run as written: ``make cluster N=2``, a replay of about a minute, the
export of the topic, the batch recomputation equal to the store's matrices, then down and
reset. A shopper uses the page meanwhile, so the export must hold the page's events too.

Only what cannot be shared with other tests changes: this test's topic prefix, consumer group,
web port and state directory (environment variables the README names), the services' ports
if they are not the defaults, and ``var/`` (a temporary directory instead).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from distributed.topic_admin import partitions_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
PAGE_EVENTS = 7


def runbook() -> list[str]:
    """The commands of the README's runbook block, in order."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("On one machine (the runbook", 1)[1].split("```bash\n", 1)[1]
    return [line for line in block.split("```", 1)[0].splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(port: int, method: str, path: str, body: Any = None, token: str | None = None
         ) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read() or b"null")


def shop_on_the_page(port: int, deadline: float) -> tuple[int, dict[str, Any], str]:
    """A shopper on the web node: a session, its WebSocket and its events, each pushed back;
    then, once the replay runs, the node's figures (``/stats``, ``/metrics``). Returns the
    events sent and those figures."""
    from websockets.sync.client import connect

    while time.monotonic() < deadline:
        try:
            if call(port, "GET", "/readyz")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.5)
    _, opened = call(port, "POST", "/sessions", {})
    session, token = opened["session"], opened["token"]
    with connect(f"ws://127.0.0.1:{port}/ws/sessions/{session}?token={token}",
                 open_timeout=10) as socket_:
        json.loads(socket_.recv(timeout=10))  # the lists as they are
        for i in range(PAGE_EVENTS):
            kind = ("clicks", "clicks", "carts", "orders")[i % 4]
            status, _ = call(port, "POST", "/events",
                             {"session": session, "aid": 7 + i, "type": kind}, token)
            assert status == 202
            while json.loads(socket_.recv(timeout=20))["version"] < i + 1:
                pass  # the push of this event's lists
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stats = call(port, "GET", "/stats")[1]
        if (stats["replay"]["state"] == "running" and stats.get("workers") == 2
                and stats.get("sessions")):
            break
        time.sleep(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    return PAGE_EVENTS, stats, metrics


def test_the_readme_runbook_as_written(kafka_url: str, redis_url: str, unique_prefix: str,
                                       tmp_path: Path) -> None:
    commands = runbook()
    assert commands[0].startswith("make cluster N=2")
    assert any(c.startswith("make cluster-reset") for c in commands)
    kafka, store = kafka_url.removeprefix("kafka://"), redis_url.removeprefix("redis://")
    var = tmp_path / "var"
    script = "\n".join(
        c.replace("127.0.0.1:9092", kafka).replace("127.0.0.1:6379/0", store)
        .replace("var/", f"{var}/") for c in commands)
    web_port = free_port()
    env = {**os.environ, "LIVEREC_TOPIC_PREFIX": unique_prefix, "LIVEREC_APP_ID": unique_prefix,
           "LIVEREC_PORT": str(web_port), "LIVEREC_CLUSTER_DIR": str(tmp_path / "cluster"),
           "LIVEREC_KAFKA_PORT": kafka.rsplit(":", 1)[1],
           "LIVEREC_REDIS_PORT": store.split(":", 1)[1].split("/", 1)[0]}
    env.pop("LIVEREC_BUS", None)
    env.pop("LIVEREC_STORE", None)
    log = tmp_path / "runbook.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        run = subprocess.Popen(["bash", "-euxo", "pipefail", "-c", script], cwd=REPO, env=env,
                               stdout=out, stderr=subprocess.STDOUT)
        try:
            sent, stats, metrics = shop_on_the_page(web_port, started + 240)
            assert run.wait(timeout=600) == 0, log.read_text()[-4000:]
        finally:
            if run.poll() is None:
                run.kill()
            subprocess.run([REPO / "deploy/local/cluster.sh", "down"], env=env, timeout=120,
                           capture_output=True)
    output = log.read_text()
    took = time.monotonic() - started

    assert "cluster: ready: 2 worker(s)" in output, output[-4000:]
    planned = re.search(r"replaying ([\d,]+) events over .* about (\d+) s", output)
    assert planned and int(planned.group(2)) == 60, output[-4000:]
    assert "lag 0" in output and "same input, same matrices" in output
    generated = int(planned.group(1).replace(",", ""))
    exported = sum(len(json.loads(line)["events"])
                   for line in (var / "log.jsonl").read_text().splitlines())
    assert exported == generated + sent  # the page's events are in the log, and nothing else
    assert took < 300, f"the runbook took {took:.0f} s"

    # The web node showed the whole deployment while the replay ran: both workers' sessions
    # and recall, the replay's progress, and its own pushes' latency.
    replay = stats["replay"]
    assert replay["state"] == "running" and replay["total"] == generated, stats
    assert 0 < replay["replayed"] <= generated and replay["eta_s"] is not None
    assert stats["workers"] == 2 and stats["sessions"] > 0, stats
    assert any(isinstance(v, float) for v in stats["recall"].values()), stats
    assert stats["latency_ms"]["p50"] is not None, stats
    assert re.search(r"^liverec_sessions [1-9]", metrics, re.M), metrics
    assert re.search(r'^liverec_prequential_judged_total\{objective="clicks"\} [1-9]',
                     metrics, re.M), metrics

    # Reset: the topics and every key of the prefix are gone, so a second replay starts
    # from nothing instead of doubling every count.
    for topic in (f"{unique_prefix}events", f"{unique_prefix}events.dlq"):
        with pytest.raises(ValueError, match="does not exist"):
            asyncio.run(partitions_of(kafka_url, topic))
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match=f"{unique_prefix}*", count=10_000))
    assert not list((tmp_path / "cluster").glob("*.pid"))


def test_the_cluster_refuses_what_cannot_work(tmp_path: Path, unique_prefix: str,
                                              kafka_url: str, redis_url: str) -> None:
    """More workers than partitions (some would never be ready), a count that is not one, a
    reset while the cluster is up: each refused with the reason, nothing started."""
    script = REPO / "deploy/local/cluster.sh"
    env = {**os.environ, "LIVEREC_CLUSTER_DIR": str(tmp_path), "LIVEREC_PARTITIONS": "4",
           "LIVEREC_TOPIC_PREFIX": unique_prefix}
    for args, reason in ((["up", "5"], "5 workers for 4 partitions"),
                         (["up", "two"], "expected a positive number"),
                         (["sideways"], "usage")):
        done = subprocess.run([script, *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode != 0 and reason in done.stderr, done.stderr
    assert not list(tmp_path.glob("*.pid"))
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "worker-1.pid").write_text(str(sleeper.pid))
        done = subprocess.run([script, "reset"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode != 0 and "the cluster is up" in done.stderr, done.stderr
    finally:
        sleeper.kill()
