"""What only the Redis store does: row logs compacted beside the workers that append to them,
and ``liverec covis --from-store`` dumping what it holds. Everything both stores do is in
``tests/test_store_contract.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from distributed.row_log import HEADER, compacted_log
from distributed.store import RedisStore
from online_models.covisitation import CovisConfig
from online_models.rows import CellJournal, journal_add
from producers.ordering import time_ordered
from producers.readers import read_events
from stream.pipeline import PipelineConfig, SessionPipeline

pytestmark = pytest.mark.integration
TOPIC = "events"


@pytest.fixture
def store(redis_url: str, unique_prefix: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_url, unique_prefix)
    yield store
    store.clear()


def test_a_compaction_keeps_what_was_appended_meanwhile_and_yields_to_another(
        store: RedisStore) -> None:
    """The compaction contract: sums written back only over the bytes that were read, kept
    appends after them, and refused when another compaction replaced the log first."""
    store.compact_min_bytes = 64
    key = f"{store.prefix}cv:buy2buy:0:10"

    def batch(offset: int, cells: dict[int, int]) -> list[str]:
        journal = CellJournal()
        for b, inc in cells.items():
            journal_add(journal.buys, 10, b, inc)
        encoded = store.encode(journal, {(TOPIC, 0): (offset, offset + 1)})
        assert store.apply_encoded(encoded)
        return encoded.compact

    due: list[str] = []
    for offset in range(6):
        due += batch(offset, {20: 1, 30 + offset: 2})
    assert due and set(due) == {"buy2buy:0:10"}
    expected = {20: 6, **{30 + o: 2 for o in range(6)}}
    assert store.row("buy2buy", 10) == expected
    read = cast(bytes, store.client.get(key))
    batch(6, {20: 100, 99: 1})  # appended after the read, before the write
    summed = compacted_log(read, 2)
    assert store._compact(keys=[key], args=[read[:HEADER], summed, len(read)]) == 1
    expected |= {20: 106, 99: 1}
    assert store.row("buy2buy", 10) == expected
    assert len(cast(bytes, store.client.get(key))) == len(summed) + 2 * 2 * 8
    # A second compaction from the same read finds another generation: refused, no change.
    assert store._compact(keys=[key], args=[read[:HEADER], summed, len(read)]) == 0
    assert store.row("buy2buy", 10) == expected
    assert store.compact(["buy2buy:0:10"]) == 1
    assert store.row("buy2buy", 10) == expected
    assert len(cast(bytes, store.client.get(key))) == HEADER + 8 * 2 * 8  # one record each



def test_covis_from_store_dumps_in_the_covis_format(
    store: RedisStore, shared_data: Path, tmp_path: Path, redis_url: str, unique_prefix: str
) -> None:
    from liverec.cli import main

    path = shared_data / "otto-sample" / "train.jsonl"
    pipeline = SessionPipeline(PipelineConfig(covis=CovisConfig(max_neighbors=0)))
    pipeline.covis.take_journal()
    events = list(time_ordered(read_events(path)))
    pipeline.apply(events)
    assert store.apply(pipeline.covis.take_journal(), {(TOPIC, 0): (0, len(events))})
    dumped, batch = tmp_path / "store.jsonl", tmp_path / "batch.jsonl"
    assert main(["covis", "--from-store", redis_url, "--prefix", unique_prefix,
                 "--out", str(dumped)]) == 0
    assert main(["covis", str(path), "--mode", "batch", "--out", str(batch)]) == 0
    assert dumped.read_bytes() == batch.read_bytes()
