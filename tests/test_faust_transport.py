"""The worker's Faust transport passes liverec's consumer settings to aiokafka (no broker is
contacted: the consumer is built, not started)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from distributed.worker import Worker, WorkerConfig, faust_worker
from stream.pipeline import PipelineConfig


def unstarted_app(app_id: str, **settings: Any) -> Any:
    """A worker app whose broker and Redis are never contacted (built inside a loop)."""
    return Worker(WorkerConfig(broker="kafka://127.0.0.1:1", store="redis://127.0.0.1:1/0",
                               topic_prefix="t-", app_id=app_id, partitions=4, max_batch=100,
                               **settings), PipelineConfig()).app


def test_the_consumer_holds_fetches_for_the_configured_wait_not_faust_s() -> None:
    async def build() -> int:
        app = unstarted_app("fetch-wait-test", fetch_max_wait_ms=37)
        thread = app.consumer._new_consumer_thread()  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(build()) == 37


def test_the_consumer_lingers_between_fetches_only_while_records_come_fast() -> None:
    """The batch window is waited while it would gather at least 2 records at the rate the
    last fetch's came in (so that batches grow with the load); on a quieter stream the next
    fetch goes at once (waiting would only add latency)."""
    window, arrival = 1.0, 0.6  # each fetch waits 0.6 s for its records
    sizes = [1, 1, 3, 1, 1]  # 1 in 0.6 s: ~1.7 per window, quiet; 3 in 0.6 s: 5, busy

    async def run() -> list[float]:
        app = unstarted_app("linger-test", batch_window_s=window)
        consumer = app.consumer
        fetcher = type("Fetcher", (), {"_stopped": asyncio.Event()})()
        app.transport.bulk_sinks["t-events"] = None  # type: ignore[attr-defined]
        calls: list[float] = []

        async def fetch(_wait_s: float) -> tuple[dict[str, list[int]], set[str]]:
            calls.append(asyncio.get_running_loop().time())
            if len(calls) > len(sizes):
                fetcher._stopped.set()
                return {}, set()
            await asyncio.sleep(arrival)
            return {"tp": [0] * sizes[len(calls) - 1]}, set()

        async def nothing(*args: object) -> None:
            return None

        consumer._wait_next_records = fetch  # type: ignore[attr-defined]
        consumer._deliver = nothing  # type: ignore[attr-defined]
        consumer.perform_seek = nothing  # type: ignore[attr-defined]
        await consumer._drain_messages(fetcher)  # type: ignore[attr-defined]
        return [b - a for a, b in zip(calls, calls[1:], strict=False)]

    gaps = asyncio.run(run())
    assert len(gaps) == len(sizes)
    assert gaps[2] >= window * 0.95  # after the fast fetch: start to start, the window
    assert all(gap < window * 0.85 for i, gap in enumerate(gaps) if i != 2), gaps


def test_the_worker_keeps_the_root_logger_at_its_level() -> None:
    """Faust's spinner would set the root logger to DEBUG, making every aiokafka debug call
    build a record that no handler keeps."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        async def configure() -> int:
            worker = faust_worker(unstarted_app("log-level-test"), "warning")
            if not root.handlers:  # Faust's own set-up installs one before this hook runs
                root.addHandler(logging.NullHandler())
            root.setLevel(logging.WARNING)
            worker.on_setup_root_logger(root, logging.WARNING)
            return root.getEffectiveLevel()

        assert asyncio.run(configure()) == logging.WARNING
        assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def test_a_bulk_delivery_tells_faust_s_stall_check_the_stream_took_records() -> None:
    """Faust's ``verify_event_path`` logged "Stream has not started processing" for every
    partition whose stream never took a record by its per-message path; the bulk hand-over
    records that it did. A topic not handed over in bulk is an error, not silently dropped."""
    from aiokafka.structs import ConsumerRecord
    from faust.types import TP

    from distributed.transport import Fetched

    async def deliver() -> tuple[dict[TP, float], list[Fetched], str]:
        app = unstarted_app("monitor-test")
        consumer = app.consumer
        got: list[Fetched] = []

        async def sink(fetched: Fetched) -> None:
            got.append(fetched)

        tp = TP("t-events", 2)
        record = ConsumerRecord("t-events", 2, 7, 0, 0, None, b"{}", None, 0, 2, ())
        await consumer._deliver({tp: [record]}, None, {"t-events": sink})  # type: ignore[attr-defined]
        try:
            await consumer._deliver({TP("other", 0): [record]}, None,  # type: ignore[attr-defined]
                                    {"t-events": sink})
            refused = ""
        except RuntimeError as exc:
            refused = str(exc)
        return dict(app.monitor.stream_inbound_time), got, refused

    inbound, got, refused = asyncio.run(deliver())
    assert list(inbound) == [TP("t-events", 2)]
    assert [list(f.records) for f in got] == [[TP("t-events", 2)]]
    assert "other: subscribed, but not delivered in bulk" in refused
