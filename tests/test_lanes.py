"""A worker consumes its Kafka partitions at different paces; the matrices and lists must not
depend on how the partitions interleave (each partition is its own lane of the pipeline)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.covisitation import DAY_MS, HOUR_MS, CovisConfig, CoVisitation
from online_models.covisitation_batch import batch_covisitation
from producers.generator import GeneratorConfig, generate_sessions
from producers.ordering import time_ordered
from stream.events import Event
from stream.pipeline import PipelineConfig, SessionPipeline

T0 = 1_659_304_800_000


def interleaved(events: list[Event], lanes: int, rng: random.Random,
                paces: list[int]) -> list[tuple[int, list[Event]]]:
    """The batches a worker applies: each lane's events in time order, taken in chunks of
    its own pace, the lanes visited in random order (a fast partition runs days ahead)."""
    parts = [[e for e in events if e.session % lanes == lane] for lane in range(lanes)]
    taken = [0] * lanes
    batches: list[tuple[int, list[Event]]] = []
    while any(taken[lane] < len(parts[lane]) for lane in range(lanes)):
        lane = rng.randrange(lanes)
        chunk = parts[lane][taken[lane]:taken[lane] + paces[lane]]
        taken[lane] += len(chunk)
        if chunk:
            batches.append((lane, chunk))
    return batches


def apply_in_lanes(config: PipelineConfig, batches: list[tuple[int, list[Event]]],
                   one_lane: bool = False, expire_every: int = 10_000) -> SessionPipeline:
    pipeline = SessionPipeline(config)
    pipeline.expire_every = pipeline._until_expire = expire_every
    for lane, chunk in batches:
        pipeline.apply(chunk, lane=0 if one_lane else lane)
    return pipeline


@st.composite
def long_sessions(draw: st.DrawFn) -> list[Event]:
    """Time-ordered events of a few sessions over several days, with gaps of hours: runs
    open and close, sessions go idle past a day and come back."""
    clock = T0
    events = []
    for _ in range(draw(st.integers(1, 150))):
        clock += draw(st.sampled_from([0, 60_000, HOUR_MS, 6 * HOUR_MS, 30 * HOUR_MS]))
        events.append(Event(draw(st.integers(0, 7)), draw(st.integers(0, 9)), clock,
                            draw(st.sampled_from([0, 0, 0, 1, 2]))))
    return events


@settings(max_examples=200, deadline=None)
@given(long_sessions(), st.integers(1, 4), st.integers(0, 10_000))
def test_matrices_do_not_depend_on_how_lanes_interleave(
        events: list[Event], lanes: int, seed: int) -> None:
    """Sweeps after every batch, lanes days apart: still the batch definition, exactly."""
    rng = random.Random(seed)
    paces = [rng.choice([1, 2, 5, 40]) for _ in range(lanes)]
    pipeline = apply_in_lanes(PipelineConfig(), interleaved(events, lanes, rng, paces),
                              expire_every=1)
    clicks, carts_orders, buy2buy = batch_covisitation([tuple(e) for e in events])
    assert pipeline.covis.matrix("clicks") == clicks
    assert pipeline.covis.matrix("carts_orders") == carts_orders
    assert pipeline.covis.matrix("buy2buy") == buy2buy


def test_a_users_log_in_four_lanes_at_uneven_paces_equals_batch() -> None:
    """The log a user first tried (3,000 sessions, 50,928 events over 62 days, sessions up to
    500 events, items with rows of over 1,000 neighbours) in four lanes, one of them eight
    times faster than another: equal to the batch matrices, and the lists equal the
    time-ordered pipeline's. In one lane (the worker before lanes), neither held."""
    config = GeneratorConfig(sessions=3000, items=4000, seed=99)
    events = list(time_ordered(e for _, s in generate_sessions(config) for e in s))
    assert len(events) == 50_928
    assert (events[-1].ts - events[0].ts) > 60 * DAY_MS
    rng = random.Random(7)
    batches = interleaved(events, 4, rng, [2000, 250, 1000, 500])
    pipeline = apply_in_lanes(PipelineConfig(), batches)
    clicks, carts_orders, buy2buy = batch_covisitation([tuple(e) for e in events])
    assert max(len(row) for row in clicks.values()) > 1000
    assert pipeline.covis.matrix("carts_orders") == carts_orders
    assert pipeline.covis.matrix("buy2buy") == buy2buy
    assert pipeline.covis.matrix("clicks") == clicks
    ordered = SessionPipeline(PipelineConfig())
    ordered.apply(events)
    sessions = sorted({e.session for e in events})
    assert all(pipeline.recommendations(s) == ordered.recommendations(s) for s in sessions)
    one_lane = apply_in_lanes(PipelineConfig(), batches, one_lane=True)
    assert one_lane.covis.matrix("carts_orders") != carts_orders


def test_a_late_lane_sums_the_previous_epoch_before_shifting() -> None:
    """Lane 0 enters a new epoch; lane 1 then brings two visits of the same pair from the
    epoch before. Shifting each late increment on its own would lose a unit to the floors."""
    tw = CoVisitation().time_weight
    boundary = (T0 // tw.epoch_ms + 1) * tw.epoch_ms
    late = [boundary - 5 * HOUR_MS + 7_000, boundary - 3 * HOUR_MS + 11_000]
    parts = [tw.weight(ts + 60_000, tw.epoch(ts)) for ts in late]  # tau: the second click
    assert sum(w >> tw.shift for w in parts) < sum(parts) >> tw.shift  # the case at issue
    lane0 = [Event(0, 5, boundary - 6 * HOUR_MS, 0), Event(0, 6, boundary + HOUR_MS, 0)]
    lane1 = [Event(s, aid, ts + i * 60_000, 0)
             for s, ts in zip((1, 3), late, strict=True) for i, aid in enumerate((1, 2))]
    pipeline = apply_in_lanes(PipelineConfig(), [(0, lane0), (1, lane1)])
    clicks, _, _ = batch_covisitation([tuple(e) for e in time_ordered([*lane0, *lane1])])
    assert pipeline.covis.matrix("clicks") == clicks
    assert clicks[1][2] == sum(parts) >> tw.shift


def test_lanes_days_apart_across_short_epochs_equal_batch() -> None:
    """The same log with 14-day epochs (it crosses four or five): a fast lane enters each
    epoch days before a slow one, whose events then land in the previous epoch. Those late
    increments must sum as the batch sums them (per epoch, then shifted), not each shifted on
    its own: floors of parts are not the floor of the sum."""
    short = CovisConfig(epoch_half_lives=1)
    config = GeneratorConfig(sessions=3000, items=4000, seed=99)
    epoch_ms = short.half_life_ms * short.epoch_half_lives
    events = list(time_ordered(e for _, s in generate_sessions(config) for e in s))
    # End the log soon after its densest epochs, so the kept epochs hold thousands of events.
    events = [e for e in events if e.ts // epoch_ms <= events[0].ts // epoch_ms + 3]
    assert len(events) > 50_000
    batches = interleaved(events, 4, random.Random(7), [2000, 250, 1000, 500])
    pipeline = apply_in_lanes(PipelineConfig(covis=short, session_ttl_ms=10_000 * DAY_MS),
                              batches)
    clicks, carts_orders, buy2buy = batch_covisitation([tuple(e) for e in events], short)
    assert pipeline.covis.matrix("clicks") == clicks
    assert pipeline.covis.matrix("carts_orders") == carts_orders
    assert pipeline.covis.matrix("buy2buy") == buy2buy
