"""`liverec replay FILE --to kafka://…` publishes every event, keyed by session, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from distributed.kafka_bus import KafkaBus
from liverec.cli import main
from producers.readers import read_events

pytestmark = pytest.mark.integration


async def test_replay_to_kafka_publishes_every_event_in_session_order(
    kafka_url: str, unique_prefix: str, shared_data: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = shared_data / "otto-sample" / "train.jsonl"
    monkeypatch.setenv("LIVEREC_TOPIC_PREFIX", unique_prefix)
    code = await asyncio.to_thread(main, ["replay", str(path), "--to", kafka_url, "--quiet"])
    assert code == 0
    assert "published 862 events" in capsys.readouterr().out

    bus = KafkaBus(kafka_url, topic=f"{unique_prefix}events", group_id=unique_prefix)
    await bus.close()  # nothing to publish: read what is there, then stop

    async def consume() -> list:
        return [e async for batch in bus.batches(500) for e in batch]

    received = await asyncio.wait_for(consume(), 60)
    expected = sorted(read_events(path), key=lambda e: e.ts)
    assert sorted(received) == sorted(expected)
    for session in {e.session for e in expected}:
        assert [e for e in received if e.session == session] == \
            [e for e in expected if e.session == session]
