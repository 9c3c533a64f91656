"""Synthetic sessions: reproducible to the byte, OTTO-like in shape, and learnable."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from producers.generator import (
    GeneratorConfig,
    build_catalog,
    generate_sessions,
    write_jsonl,
    write_retailrocket,
)
from producers.readers import read_sessions
from producers.stats import session_stats
from stream.events import CARTS, ORDERS, Event

SMALL = GeneratorConfig(sessions=300, items=2_000, seed=7)
Sample = tuple[GeneratorConfig, list[tuple[int, list[Event]]]]


@pytest.fixture(scope="module")
def sample() -> Sample:
    """5,000 sessions: enough for shares to settle within a few tenths of a percent."""
    config = GeneratorConfig(sessions=5_000, items=5_000, seed=11)
    return config, list(generate_sessions(config))


@pytest.mark.parametrize("name", ["sessions.jsonl", "sessions.jsonl.gz"])
def test_same_config_gives_the_same_bytes(tmp_path: Path, name: str) -> None:
    first, second = tmp_path / "a" / name, tmp_path / "b" / name
    first.parent.mkdir()
    second.parent.mkdir()
    assert write_jsonl(first, generate_sessions(SMALL)) == write_jsonl(
        second, generate_sessions(SMALL))
    assert first.read_bytes() == second.read_bytes()


def test_gzip_output_has_no_name_and_zero_mtime(tmp_path: Path) -> None:
    path = tmp_path / "sessions.jsonl.gz"
    write_jsonl(path, generate_sessions(SMALL))
    header = path.read_bytes()[:10]
    assert header[:2] == b"\x1f\x8b"
    assert header[3] & 0x08 == 0  # FNAME flag unset
    assert header[4:8] == b"\0\0\0\0"  # mtime


def test_different_seeds_give_different_sessions() -> None:
    other = GeneratorConfig(sessions=300, items=2_000, seed=8)
    assert list(generate_sessions(SMALL)) != list(generate_sessions(other))


def test_written_file_reads_back_as_the_generated_sessions(tmp_path: Path) -> None:
    path = tmp_path / "sessions.jsonl.gz"
    count = write_jsonl(path, generate_sessions(SMALL))
    back = list(read_sessions(path, strict=True))
    assert back == list(generate_sessions(SMALL))
    assert count == sum(len(events) for _, events in back)


def test_sessions_are_numbered_in_start_order_with_increasing_ts(sample: Sample) -> None:
    config, sessions = sample
    assert [sid for sid, _ in sessions] == list(range(config.sessions))
    starts = [events[0].ts for _, events in sessions]
    assert starts == sorted(starts)
    assert config.start_ms <= starts[0] and starts[-1] < config.start_ms + 28 * 86_400_000
    for sid, events in sessions:
        assert all(e.session == sid and 0 <= e.aid < config.items for e in events)
        assert all(a.ts <= b.ts for a, b in zip(events, events[1:], strict=False))


def test_type_shares_and_lengths_are_near_otto(sample: Sample) -> None:
    _, sessions = sample
    stats = session_stats(sessions)
    assert stats["click_share"] == pytest.approx(0.8985, abs=0.015)
    assert stats["cart_share"] == pytest.approx(0.078, abs=0.012)
    assert stats["order_share"] == pytest.approx(0.0235, abs=0.006)
    assert 5 <= stats["session_length_p50"] <= 7
    assert 14 <= stats["session_length_mean"] <= 20
    assert stats["session_length_min"] >= 2 and stats["session_length_max"] <= 500
    assert stats["top1pct_item_share"] > 0.05  # popularity is skewed


def test_orders_are_one_burst_of_carted_items(sample: Sample) -> None:
    _, sessions = sample
    ordering = 0
    for _, events in sessions:
        orders = [i for i, e in enumerate(events) if e.type == ORDERS]
        if not orders:
            continue
        ordering += 1
        assert orders == list(range(orders[0], orders[-1] + 1))  # contiguous
        assert len({events[i].ts for i in orders}) == 1  # one timestamp, as in OTTO
        carted = {e.aid for e in events[:orders[0]] if e.type == CARTS}
        assert {events[i].aid for i in orders} <= carted
        assert len(orders) == len({events[i].aid for i in orders})
    assert ordering > 0.05 * len(sessions)


def test_items_that_follow_each_other_share_a_category_far_above_chance(sample: Sample) -> None:
    """The structure co-visitation learns: consecutive distinct items are related."""
    config, sessions = sample
    catalog = build_catalog(config)
    pairs = [(a.aid, b.aid) for _, events in sessions
             for a, b in zip(events, events[1:], strict=False) if a.aid != b.aid]
    same = np.mean([catalog.category[a] == catalog.category[b] for a, b in pairs])
    seen = Counter(catalog.category[a] for a, _ in pairs)
    chance = sum((n / len(pairs)) ** 2 for n in seen.values())
    assert same > 0.5 and same > 10 * chance


def test_items_re_occur_within_sessions(sample: Sample) -> None:
    _, sessions = sample
    assert 0.2 < session_stats(sessions)["repeat_click_rate"] < 0.8


def test_nonsense_configs_are_refused() -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(sessions=10, items=0)
    with pytest.raises(ValueError, match="revisit_prob"):
        GeneratorConfig(sessions=10, items=10, revisit_prob=1.5)


def test_tiny_catalogs_and_zero_sessions_work() -> None:
    assert list(generate_sessions(GeneratorConfig(sessions=0, items=5))) == []
    sessions = list(generate_sessions(GeneratorConfig(sessions=50, items=1, days=0.01)))
    assert len(sessions) == 50
    assert {e.aid for _, events in sessions for e in events} == {0}


def test_retailrocket_output_reads_back_as_the_same_events(tmp_path: Path) -> None:
    """``liverec generate --out events.csv``: RetailRocket's format, its reader gives back
    every event (sessions cut again at 30-minute gaps, as the real file is)."""
    sessions = list(generate_sessions(GeneratorConfig(sessions=3000, items=2000, seed=6)))
    path = tmp_path / "events.csv"
    written = write_retailrocket(path, sessions)
    assert written >= 50_000
    assert path.read_text().splitlines()[0] == "timestamp,visitorid,event,itemid,transactionid"
    back = [e for _, evs in read_sessions(path, strict=True) for e in evs]
    assert len(back) == written
    assert Counter((e.aid, e.ts, e.type) for e in back) == Counter(
        (e.aid, e.ts, e.type) for _, evs in sessions for e in evs)
    assert Counter(e.type for e in back)[ORDERS] > 0
