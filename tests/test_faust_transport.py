"""The worker's Faust transport passes liverec's consumer settings to aiokafka (no broker is
contacted: the consumer is built, not started)."""

from __future__ import annotations

import asyncio

from stream.pipeline import PipelineConfig
from stream.worker import create_worker_app


def test_the_consumer_holds_fetches_for_the_configured_wait_not_faust_s() -> None:
    async def build() -> int:
        app = create_worker_app(broker="kafka://127.0.0.1:1", store="redis://127.0.0.1:1/0",
                                topic_prefix="t-", app_id="fetch-wait-test", partitions=4,
                                max_batch=100, config=PipelineConfig(), fetch_max_wait_ms=37)
        thread = app.consumer._new_consumer_thread()  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(build()) == 37
