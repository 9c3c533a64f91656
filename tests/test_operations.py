"""The operator's commands: the replay's plan, ``liverec export``, ``liverec lag`` and
``liverec reset``, on clean and on hostile input."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from distributed.topic_admin import applied_lag, partitions_of
from liverec.sources import ordered_file_events
from producers.replay import replay_plan, speed_for
from stream.events import Event
from stream.wire import encode

DAY_MS = 86_400_000


def liverec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "liverec", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def test_a_duration_sets_the_speed_and_the_plan_says_how_long() -> None:
    speed = speed_for(57 * DAY_MS, 60)
    assert speed == pytest.approx(57 * 86_400 / 60)
    plan = replay_plan(350_000, 57 * DAY_MS, speed)
    assert "350,000 events over 57.0 days" in plan and "about 60 s" in plan
    assert "5,833 events/s" in plan
    assert "about 41 min" in replay_plan(350_000, 57 * DAY_MS, 2000)
    assert "as fast as" in replay_plan(10, DAY_MS, None)
    assert speed_for(0, 60) is None  # one instant: nothing to pace


@pytest.mark.parametrize("duration", [0, -5, math.nan, -math.inf])
def test_a_duration_that_is_no_time_is_refused(duration: float) -> None:
    with pytest.raises(ValueError, match="duration"):
        speed_for(DAY_MS, duration)


def test_the_replay_says_its_plan_before_it_starts(tmp_path: Path) -> None:
    data = tmp_path / "s.jsonl"
    sessions = [{"session": 1, "events": [{"aid": 5, "ts": 0, "type": "clicks"},
                                          {"aid": 6, "ts": 2 * DAY_MS, "type": "carts"}]},
                {"session": 2, "events": [{"aid": 5, "ts": DAY_MS, "type": "orders"}]}]
    data.write_text("".join(json.dumps(s) + "\n" for s in sessions))
    events, total, first, span = ordered_file_events(data)
    assert (total, first, span) == (3, 0, 2 * DAY_MS)
    assert [e.ts for e in events] == [0, DAY_MS, 2 * DAY_MS]
    done = liverec("replay", str(data), "--duration", "0.5", "-q")
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("replaying 3 events over 2.0 days") and "about 0 s" in first
    refused = liverec("replay", str(data), "--duration", "-1")
    assert refused.returncode == 2 and "duration" in refused.stderr
    both = liverec("replay", str(data), "--duration", "1", "--speed", "10")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_lag_counts_what_the_store_has_not_applied() -> None:
    ends = {0: (0, 100), 1: (40, 90), 2: (0, 0)}
    stored = {0: 100, 1: None, 2: None}
    # partition 1: its first 40 records are gone from the broker, so 50 remain to apply
    assert applied_lag(ends, stored.get) == {0: 0, 1: 50, 2: 0}


def test_operator_commands_refuse_what_is_not_a_deployment(tmp_path: Path) -> None:
    for args, reason in ((["export", "--from", "redis://x:1", "--out", str(tmp_path / "o")],
                          "expected kafka://"),
                         (["reset", "--bus", "kafka://127.0.0.1:9", "--store", "memory://"],
                          "expected redis://"),
                         (["lag", "--bus", "memory://"], "expected kafka://")):
        done = liverec(*args)
        assert done.returncode == 2 and reason in done.stderr, done.stderr
    asked = liverec("reset", "--bus", "kafka://127.0.0.1:9", "--store", "redis://127.0.0.1:1/0")
    assert asked.returncode == 1 and "run again with --yes" in asked.stderr


@pytest.mark.integration
def test_export_writes_the_topic_and_skips_what_is_not_an_event(
        kafka_url: str, redis_url: str, unique_prefix: str, tmp_path: Path) -> None:
    """Events of 400 sessions out of time order across partitions, and junk between them
    (not JSON, wrong fields, empty, oversize): the export holds every event, each session
    in time order, and names what it skipped."""
    topic = f"{unique_prefix}events"
    events = [Event(s, (s * 7 + i) % 500, (1000 - i) * 60_000 + s, i % 3)
              for s in range(400) for i in range(12)]
    junk = [b"not json", b'{"session": 1}', b"", b"x" * 5000, b'{"session": -1, "aid": 1, '
            b'"ts": 1, "type": "clicks"}']

    async def publish() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_url.removeprefix("kafka://"),
                                    acks="all")
        await producer.start()
        try:
            for i, event in enumerate(events):
                key, value = encode(event)
                await producer.send(topic, value, key=key)
                if i % 1000 == 0:
                    await producer.send(topic, junk[(i // 1000) % len(junk)], key=b"junk")
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(publish())
    out = tmp_path / "log.jsonl"
    env = {"LIVEREC_TOPIC_PREFIX": unique_prefix, "LIVEREC_APP_ID": unique_prefix}
    done = liverec("export", "--from", kafka_url, "--out", str(out), "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "exported 4,800 events of 400 sessions" in done.stdout
    assert "skipped 5 records" in done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["session"] for line in lines] == list(range(400))
    for line in lines:
        stamps = [e["ts"] for e in line["events"]]
        assert stamps == sorted(stamps) and len(stamps) == 12
    missing = liverec("export", "--from", kafka_url, "--topic", f"{unique_prefix}nope",
                      "--out", str(tmp_path / "x.jsonl"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    # asking about a topic never created it
    with pytest.raises(ValueError, match="does not exist"):
        asyncio.run(partitions_of(kafka_url, f"{unique_prefix}nope"))

    # Nothing applied them: the lag is every event; reset then removes the topic.
    env["LIVEREC_STORE"] = redis_url
    lag = liverec("lag", "--bus", kafka_url, "--wait", "--timeout", "1", "-q", env=env)
    assert lag.returncode == 1 and "lag 4,805 after 1 s" in lag.stdout, lag.stdout
    reset = liverec("reset", "--bus", kafka_url, "--yes", env=env)
    assert reset.returncode == 0 and f"deleted topics {topic}" in reset.stdout, reset.stderr
    with pytest.raises(ValueError, match="does not exist"):
        asyncio.run(partitions_of(kafka_url, topic))


@pytest.mark.integration
def test_a_second_replay_into_a_topic_says_it_adds_to_what_is_there(
        kafka_url: str, redis_url: str, unique_prefix: str, tmp_path: Path) -> None:
    data = tmp_path / "s.jsonl"
    data.write_text(json.dumps({"session": 1, "events": [
        {"aid": 5, "ts": 0, "type": "clicks"}, {"aid": 6, "ts": 60_000, "type": "carts"}]}) + "\n")
    env = {"LIVEREC_TOPIC_PREFIX": unique_prefix, "LIVEREC_APP_ID": unique_prefix,
           "LIVEREC_STORE": redis_url}
    first = liverec("replay", str(data), "--to", kafka_url, "-q", env=env)
    assert first.returncode == 0 and "already holds" not in first.stderr, first.stderr
    second = liverec("replay", str(data), "--to", kafka_url, "-q", env=env)
    assert second.returncode == 0
    assert f"{unique_prefix}events already holds 2 events" in second.stderr, second.stderr
    assert "not a Redis" not in second.stderr  # the store is one: the pages show progress
    assert liverec("reset", "--bus", kafka_url, "--yes", env=env).returncode == 0
