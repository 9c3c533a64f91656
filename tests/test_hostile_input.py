"""Bad input, generated rather than hand-picked, at every door: ``POST /events``, the
WebSocket endpoint, and the Kafka topic through a worker. No answer is a 5xx, no process
dies, a rejected input leaves the state as it was, and every rejected message is in the
dead-letter topic with its reason. Over 10,000 inputs in all."""

from __future__ import annotations

import hashlib
import json
import pickle
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import SECRET, SERVICE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from stream.events import MAX_ID, EventError
from stream.wire import decode
from web.auth import issue_token

T0 = 1_659_304_800_000
FIELDS = ("session", "aid", "type", "ts")

json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
wrong_values = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False).filter(lambda f: not f.is_integer()),
    st.text(max_size=12), st.lists(st.integers(), max_size=3), st.integers(max_value=-1),
    st.integers(min_value=MAX_ID + 1, max_value=2**80))


@st.composite
def broken_events(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed event with one field removed or made wrong (extra keys may ride along)."""
    event: dict[str, Any] = {"session": draw(st.integers(0, 10**6)),
                             "aid": draw(st.integers(0, 10**6)),
                             "type": draw(st.sampled_from(["clicks", "carts", "orders", 0, 1, 2]))}
    field = draw(st.sampled_from(FIELDS))
    if field == "ts" or draw(st.booleans()):
        event["ts"] = draw(st.integers(T0 - 10**6, T0 + 10**6))
    if draw(st.booleans()):
        event.pop(field, None)
        if field == "ts":  # an absent ts is valid (stamped): break another field instead
            event["aid"] = draw(wrong_values)
    elif field == "type":
        event["type"] = draw(st.one_of(wrong_values, st.text(max_size=10).filter(
            lambda t: t not in ("clicks", "carts", "orders")), st.integers(3, 99)))
    elif field == "ts":
        # (null is no ts: the server stamps it)
        event["ts"] = draw(st.one_of(wrong_values.filter(lambda v: v is not None),
                                     st.integers(0, T0 - 10**10),
                                     st.integers(T0 + 10**10, 5 * 10**12)))
    else:
        event[field] = draw(wrong_values)
    if draw(st.booleans()):
        event.update(draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in FIELDS),
                                          json_values, max_size=2)))
    return event


@st.composite
def bad_bodies(draw: st.DrawFn) -> bytes:
    """Bodies ``POST /events`` must refuse: not JSON, not events, or a batch with one bad."""
    kind = draw(st.sampled_from(["bytes", "json", "event", "batch"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200).filter(lambda b: not _is_json(b)))
    if kind == "json":
        # Not an object nor a list of them ([] is a valid, empty batch).
        value = draw(json_values.filter(lambda v: not isinstance(v, dict | list) or v == {}))
        return dumps(value)
    if kind == "event":
        return dumps(draw(broken_events()))
    good = {"session": 1, "aid": 2, "type": "clicks"}
    batch = [good] * draw(st.integers(0, 5))
    batch.insert(draw(st.integers(0, len(batch))), draw(st.one_of(broken_events(), json_leaves)))
    return dumps(batch)


def dumps(value: Any) -> bytes:
    """JSON as a client might write it: integers of any size, Infinity (invalid) included."""
    return json.dumps(value).encode()


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def state_digest(server: Any) -> str:
    """Everything the embedded pipeline holds, as bytes."""
    pipeline = server.runtime.pipeline
    sessions = {s: pipeline.sessions.get(s).to_bytes() for s in
                sorted(pipeline.sessions._sessions)}
    covis = pipeline.covis
    held = (sessions, covis.pairs, covis.buy2buy, covis.old_pairs, covis.old_buys,
            pipeline.popularity.counts, pipeline.popularity.known, pipeline.events_applied,
            pipeline.sessions.watermark)
    return hashlib.sha256(pickle.dumps(held)).hexdigest()


@pytest.fixture(scope="module")
def seeded() -> Iterator[Any]:
    """The embedded runtime with some sessions in it."""
    from conftest import INGEST_KEY, SECRET, LiveServer

    from liverec.settings import Settings
    from stream.events import Event

    # Rate limits out of the way: thousands of requests from one address test the checks
    # behind them (the limits have their own tests).
    server = LiveServer(Settings(port=0, secret=SECRET, ingest_key=INGEST_KEY, post_rate=1e6,
                                 post_burst=10**6))
    server.runtime.replay_clock(T0, None)
    events = [Event(s, (s * 7 + i) % 50, T0 + s * 1000 + i, i % 3)
              for s in range(200) for i in range(5)]
    server.call(server.runtime.publish(events))
    deadline = time.monotonic() + 30
    while server.runtime.pipeline.events_applied < len(events):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield server
    server.close()


def test_post_events_refuses_4000_generated_bad_bodies_and_changes_nothing(
        seeded: Any) -> None:
    before = state_digest(seeded)
    published: list[int] = []
    original = seeded.runtime.publish

    async def counting(events: Any) -> None:
        published.append(len(events))
        await original(events)

    seeded.runtime.publish = counting
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=seeded.url, timeout=10) as client:
        @settings(max_examples=4000, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(body=bad_bodies(), content_type=st.sampled_from(
            ["application/json", "application/json", "text/plain", None,
             "application/x-www-form-urlencoded"]),
            authorization=st.sampled_from([SERVICE["Authorization"]] * 3 + [
                None, "Bearer junk", f"Bearer {issue_token(SECRET.encode(), 10**12 + 5)}"]))
        def post(body: bytes, content_type: str | None, authorization: str | None) -> None:
            headers = {"content-type": content_type} if content_type else {}
            if authorization:
                headers["authorization"] = authorization
            response = client.post("/events", content=body, headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert 400 <= response.status_code < 500, (body, response.text)
            detail = response.json()["detail"]
            assert detail and all(e["field"] and e["reason"] for e in detail)

        post()
    seeded.runtime.publish = original
    assert sum(statuses.values()) >= 4000
    assert published == []
    assert state_digest(seeded) == before
    assert seeded.runtime.ready() == {"pipeline": None}


def test_the_websocket_survives_2000_generated_ids_and_client_frames(seeded: Any) -> None:
    before = state_digest(seeded)
    ids = st.one_of(st.integers(-2**70, 2**70).map(str), st.text(min_size=1, max_size=12),
                    st.integers(0, 10**6).map(str))
    frames = st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=300)), max_size=3)

    @settings(max_examples=2000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(ids, frames)
    def subscribe(session: str, sent: list[bytes | str]) -> None:
        url = f"{seeded.ws_url}/ws/sessions/{urllib.parse.quote(session, safe='')}"
        try:
            with connect(url, open_timeout=10, close_timeout=2) as ws:
                first = orjson.loads(ws.recv(timeout=10))
                assert 0 <= first["session"] <= MAX_ID and len(first["clicks"]) == 20
                for frame in sent:
                    ws.send(frame)
        except InvalidStatus as exc:  # refused at the handshake: never a server error
            assert exc.response.status_code < 500
        except ConnectionClosed as exc:  # closed by the server: an invalid id
            assert exc.rcvd is None or exc.rcvd.code != 1011

    subscribe()
    deadline = time.monotonic() + 10
    while seeded.runtime.hub.subscribers():
        assert time.monotonic() < deadline, "subscriptions left behind"
        time.sleep(0.05)
    assert state_digest(seeded) == before


def _redis_state(store: Any) -> dict[bytes, bytes]:
    """Every key of the deployment but the offsets (which a rejected message moves on), the
    model's save counter (saved on a clock) and the workers' reports of their figures (made
    on a clock), with its value as Redis dumps it."""
    offsets = f"{store.prefix}offset:".encode()
    reports = f"{store.prefix}reports:".encode()
    keys = sorted(k for k in store.client.scan_iter(match=f"{store.prefix}*", count=1000)
                  if not k.startswith((offsets, reports)) and not k.endswith(b":version"))
    return {k: store.client.dump(k) for k in keys}


@pytest.mark.integration
@pytest.mark.slow
def test_a_worker_sends_4000_generated_bad_messages_to_the_dead_letter_topic(
        kafka_url: str, redis_url: str, unique_prefix: str, tmp_path: Path) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    from liverec.local_cluster import LocalCluster

    cluster = LocalCluster(kafka_url, redis_url, unique_prefix, tmp_path,
                           env={"LIVEREC_RERANK": "false"})
    bootstrap = kafka_url.removeprefix("kafka://")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        worker = cluster.start_worker()
        data = tmp_path / "seed.jsonl"
        data.write_bytes(b"".join(orjson.dumps({"session": s, "events": [
            {"aid": (s * 7 + i) % 50, "ts": T0 + s * 1000 + i, "type": "clicks"}
            for i in range(5)]}) + b"\n" for s in range(200)))
        seeded_total = cluster.published(cluster.replay(data))
        cluster.wait_drained(seeded_total)
        before = _redis_state(cluster.store)
        sent: list[tuple[bytes, str]] = []
        values = st.one_of(st.binary(max_size=300), bad_bodies(),
                           broken_events().map(dumps), json_values.map(dumps))

        @settings(max_examples=60, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(values, min_size=80, max_size=80))
        def inject(batch: list[bytes]) -> None:
            for i, value in enumerate(batch):
                try:
                    decode(value)
                    continue  # valid after all: not what this test sends
                except EventError as exc:
                    sent.append((value, str(exc)))
                producer.send(cluster.topic, value=value, key=str(i).encode(),
                              partition=i % cluster.partitions)
            producer.flush()

        inject()
        assert len(sent) >= 4000  # 4,800 drawn, nearly all invalid
        cluster.wait_drained(seeded_total + len(sent))
        assert worker.alive, worker.tail()
        metrics = worker.metrics()
        assert metrics["liverec_events_rejected_total"] == len(sent)
        assert _redis_state(cluster.store) == before
        consumer = KafkaConsumer(f"{cluster.topic}.dlq", bootstrap_servers=bootstrap,
                                 auto_offset_reset="earliest", consumer_timeout_ms=10_000)
        dead = [(m.value, dict(m.headers)["reason"].decode()) for m in consumer]
        consumer.close()
        assert sorted(dead) == sorted(sent)
    finally:
        producer.close()
        cluster.close()
