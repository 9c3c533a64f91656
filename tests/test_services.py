"""The local services (deploy/local/services.sh) are real and configured as promised."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SERVICES = Path(__file__).resolve().parents[1] / "deploy" / "local" / "services.sh"


@pytest.fixture(scope="module")
def redis_port(kafka_url: str) -> int:
    import redis

    port = int(os.environ.get("LIVEREC_REDIS_PORT", "6379"))
    try:
        redis.Redis(port=port).ping()
    except redis.ConnectionError as exc:
        message = f"Redis does not answer on 127.0.0.1:{port}: run deploy/local/services.sh up"
        if os.environ.get("CI") or os.environ.get("LIVEREC_REQUIRE_SERVICES"):
            pytest.fail(f"{message} ({exc})")
        pytest.skip(message)
    return port


def test_redis_keeps_an_append_only_file(redis_port: int) -> None:
    import redis

    assert redis.Redis(port=redis_port).config_get("appendonly") == {"appendonly": "yes"}
    assert redis.Redis(port=redis_port).config_get("auto-aof-rewrite-min-size") == {
        "auto-aof-rewrite-min-size": str(1 << 30)}


async def test_kafka_creates_and_lists_a_topic(kafka_url: str, unique_prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_url.removeprefix("kafka://"))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"{unique_prefix}probe", 4, 1)])
        # The controller answers once the topic is committed; the broker that
        # serves the listing learns of it a moment later, so poll for a while.
        deadline = time.monotonic() + 10
        while f"{unique_prefix}probe" not in (topics := await admin.list_topics()):
            assert time.monotonic() < deadline, f"{unique_prefix}probe never listed: {topics}"
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def test_bringing_services_up_twice_is_harmless(redis_port: int) -> None:
    result = subprocess.run([str(SERVICES), "up"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "already answers" in result.stdout
    status = subprocess.run([str(SERVICES), "status"], capture_output=True, text=True, timeout=30)
    assert status.returncode == 0 and "kafka: up" in status.stdout and "redis: up" in status.stdout
