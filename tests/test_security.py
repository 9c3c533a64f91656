"""The app as an attacker meets it: private sessions, origins, content types, limits, caps,
headers. Real sockets against the embedded runtime; every refusal names a field and a reason
and leaves the session as it was."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import INGEST_KEY, SECRET, SERVICE, LiveServer
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from liverec.settings import Settings
from web.auth import FIRST_SHOPPER_ID, Guard, issue_token, local_secret, token_session
from web.limits import Buckets, Connections

T0 = 1_659_304_800_000


def make_server(**overrides: Any) -> LiveServer:
    server = LiveServer(Settings(port=0, secret=SECRET, ingest_key=INGEST_KEY, **overrides))
    server.runtime.replay_clock(T0, None)
    return server


@pytest.fixture
def server() -> Iterator[LiveServer]:
    live = make_server()
    yield live
    live.close()


def new_session(client: httpx.Client) -> tuple[int, dict[str, str]]:
    response = client.post("/sessions")
    assert response.status_code == 201
    body = response.json()
    return body["session"], {"Authorization": f"Bearer {body['token']}"}


def closed_code(url: str, **kwargs: Any) -> int | None:
    """The close code the server sends right after the handshake (None: it stayed open)."""
    with connect(url, open_timeout=10, **kwargs) as ws:
        try:
            ws.recv(timeout=2)
            ws.recv(timeout=0.5)
        except TimeoutError:
            return None
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    return None


# -- tokens -----------------------------------------------------------------------------------
@given(st.integers(0, 2**53), st.text(max_size=80))
def test_a_token_names_its_session_only_under_its_secret(session: int, forged: str) -> None:
    secret = b"s3cret"
    token = issue_token(secret, session)
    assert token_session(secret, token) == session
    assert token_session(b"other", token) is None
    assert token_session(secret, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert token_session(secret, token.replace(f".{session}.", f".{session + 1}.")) is None
    assert token_session(secret, forged) is None


def test_a_guard_grants_own_public_and_service_access_only() -> None:
    guard = Guard(b"k", ingest_key="svc")
    mine = issue_token(b"k", FIRST_SHOPPER_ID + 1)
    assert guard.read(FIRST_SHOPPER_ID + 1, mine).value == "granted"
    assert guard.read(FIRST_SHOPPER_ID + 2, mine).value == "other"
    assert guard.read(FIRST_SHOPPER_ID + 2, None).value == "missing"
    assert guard.read(FIRST_SHOPPER_ID + 2, "v1.1.x").value == "invalid"
    assert guard.read(5, None).value == "granted"  # public: anyone reads
    assert guard.write(5, mine).value == "read_only"
    assert guard.write(5, "svc").value == "granted"
    assert not Guard(b"k").is_service("")  # no key set: nothing is the service key


def test_the_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = local_secret(tmp_path / "state")
    assert len(first) >= 40 and local_secret(tmp_path / "state") == first
    assert (tmp_path / "state" / "secret").stat().st_mode & 0o077 == 0  # owner only


# -- limits -----------------------------------------------------------------------------------
def test_a_bucket_refills_at_its_rate_and_says_when() -> None:
    now = [0.0]
    buckets = Buckets(rate=2.0, burst=4, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(4)] == [0.0] * 4
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # keys are independent
    now[0] = 1.0
    assert buckets.take("a", 2) == 0.0
    assert buckets.take("a", 5) == float("inf")  # more than a burst: never


def test_bucket_tables_stay_bounded_under_a_flood_of_keys() -> None:
    buckets = Buckets(rate=1.0, burst=1, size=1000)
    for key in range(100_000):
        buckets.take(key)
    assert len(buckets) == 1000


def test_connections_are_capped_per_process_client_and_session() -> None:
    caps = Connections(total=5, per_client=3, per_session=2)
    assert caps.admit("a", 1) is None and caps.admit("a", 1) is None
    assert "tab" in (caps.admit("a", 1) or "")
    assert caps.admit("a", None) is None
    assert "address" in (caps.admit("a", None) or "")
    assert caps.admit("b", None) is None and caps.admit("b", None) is None
    assert "maximum" in (caps.admit("c", None) or "")
    caps.release("a", 1)
    assert caps.admit("c", None) is None and caps.open == 5


# -- private sessions over HTTP and WebSocket -------------------------------------------------
def test_a_private_session_needs_its_own_token_everywhere(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        mine, auth = new_session(client)
        theirs, their_auth = new_session(client)
        assert mine >= FIRST_SHOPPER_ID and mine != theirs
        event = {"session": mine, "aid": 7, "type": "carts"}
        assert client.post("/events", json=event).status_code == 401
        assert client.post("/events", json=event, headers=their_auth).status_code == 403
        bad = {"Authorization": "Bearer v1.1.forged"}
        assert client.post("/events", json=event, headers=bad).status_code == 401
        assert client.post("/events", json=event, headers=auth).status_code == 202
        wait = time.monotonic() + 10
        while client.get(f"/sessions/{mine}/recommendations",
                         headers=auth).json()["version"] < 1:
            assert time.monotonic() < wait
            time.sleep(0.02)
        assert client.get(f"/sessions/{mine}/recommendations").status_code == 401
        assert client.get(f"/sessions/{mine}/recommendations",
                          headers=their_auth).status_code == 403
        assert client.get(f"/sessions/{theirs}/recommendations",
                          headers=their_auth).json()["version"] == 0  # untouched
        # The service key (a shop's backend) reads and posts any session.
        assert client.get(f"/sessions/{mine}/recommendations",
                          headers=SERVICE).status_code == 200
    ws = f"{server.ws_url}/ws/sessions/{mine}"
    assert closed_code(ws) == 4401
    assert closed_code(f"{ws}?token=junk") == 4401
    their_token = their_auth["Authorization"].split()[1]
    assert closed_code(f"{ws}?token={their_token}") == 4403
    assert closed_code(f"{ws}?token={auth['Authorization'].split()[1]}") is None


def test_public_sessions_are_readable_and_read_only(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        _, auth = new_session(client)
        body = client.get("/sessions/42/recommendations").json()
        assert body["public"] is True
        response = client.post("/events", json={"session": 42, "aid": 7, "type": "orders"},
                               headers=auth)
        assert response.status_code == 403
        assert response.json()["detail"][0]["field"] == "session"
        assert closed_code(f"{server.ws_url}/ws/sessions/42") is None


def test_one_request_cannot_order_an_item_for_many_sessions(server: LiveServer) -> None:
    """The attack that put aid 7 first on the shelf: 10,000 one-event sessions ordering it."""
    flood = [{"session": s, "aid": 7, "type": "orders"} for s in range(10_000)]
    shopper = [{"session": FIRST_SHOPPER_ID + s, "aid": 7, "type": "orders"}
               for s in range(10_000)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        _, auth = new_session(client)
        assert client.post("/events", json=flood).status_code == 401
        assert client.post("/events", json=flood, headers=auth).status_code in (403, 422)
        assert client.post("/events", json=shopper, headers=auth).status_code in (403, 422)
    assert server.runtime.pipeline.events_applied == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_post_events_takes_json_only(server: LiveServer, content_type: str | None) -> None:
    """A form or text/plain post needs no CORS preflight: any page could send one."""
    headers = {**SERVICE, **({"content-type": content_type} if content_type else {})}
    response = httpx.post(f"{server.url}/events", headers=headers,
                          content=b'{"session": 1, "aid": 2, "type": "clicks"}')
    assert response.status_code == 415
    assert response.json()["detail"][0]["field"] == "content-type"


def test_websocket_origins_other_than_the_page_are_refused(server: LiveServer) -> None:
    url = f"{server.ws_url}/ws/sessions/42"
    for origin in ("https://evil.example", "null", f"http://127.0.0.1:{server.port + 1}"):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, origin=origin, open_timeout=10)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
    assert closed_code(url, origin=f"http://127.0.0.1:{server.port}") is None  # type: ignore[arg-type]


def test_a_bad_websocket_id_gets_422_with_the_reason(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{server.ws_url}/ws/sessions/abc", open_timeout=10)
    assert refused.value.response.status_code == 422
    assert b"session" in refused.value.response.body


# -- limits through the app -------------------------------------------------------------------
def test_posts_past_the_rate_get_429_with_retry_after_and_are_counted() -> None:
    server = make_server(post_rate=1.0, post_burst=5)
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=SERVICE) as client:
            codes = [client.post("/events", json={"session": 1, "aid": i, "type": "clicks"})
                     for i in range(8)]
            assert [c.status_code for c in codes].count(202) == 5
            refused = [c for c in codes if c.status_code == 429]
            assert refused and all(int(c.headers["retry-after"]) >= 1 for c in refused)
            metrics = client.get("/metrics").text
            assert f'liverec_refused_total{{reason="rate_limited"}} {len(refused)}.0' in metrics
    finally:
        server.close()


def test_a_shoppers_session_has_an_event_budget() -> None:
    server = make_server(session_event_rate=1.0, session_event_burst=10)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            session, auth = new_session(client)
            many = [{"session": session, "aid": i, "type": "clicks"} for i in range(11)]
            assert client.post("/events", json=many, headers=auth).status_code == 422
            assert client.post("/events", json=many[:10], headers=auth).status_code == 202
            response = client.post("/events", json=many[:1], headers=auth)
            assert response.status_code == 429 and "budget" in response.text
    finally:
        server.close()


def test_new_sessions_per_address_are_limited() -> None:
    server = make_server(session_create_rate=0.5, session_create_burst=3)
    try:
        codes = [httpx.post(f"{server.url}/sessions").status_code for _ in range(5)]
        assert codes == [201, 201, 201, 429, 429]
    finally:
        server.close()


def test_websocket_frames_and_tabs_are_capped() -> None:
    server = make_server(max_tabs_per_session=2, max_connections_per_client=5)
    try:
        _, auth = new_session(httpx.Client(base_url=server.url))
        token = auth["Authorization"].split()[1]
        session = token_session(SECRET.encode(), token)
        url = f"{server.ws_url}/ws/sessions/{session}?token={token}"
        with connect(url, open_timeout=10) as one, connect(url, open_timeout=10) as two:
            one.recv(timeout=5)
            two.recv(timeout=5)
            assert closed_code(url) == 4429  # a third tab of one session
            two.send("x" * 10_000)  # past the frame limit: the server closes (1009)
            with pytest.raises(ConnectionClosed) as closed:
                two.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        public = f"{server.ws_url}/ws/sessions/42"
        with contextlib.ExitStack() as stack:
            for _ in range(5):
                stack.enter_context(connect(public, open_timeout=10))
            assert closed_code(public) == 4429  # a sixth from one address
    finally:
        server.close()


# -- what the page sends ----------------------------------------------------------------------
def test_pages_carry_security_headers_and_no_server_banner(server: LiveServer) -> None:
    for path in ("/", "/stats", "/static/app.js", "/docs"):
        response = httpx.get(f"{server.url}{path}")
        assert "server" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
    refused = httpx.post(f"{server.url}/events", content=b"{}")
    assert refused.headers["x-content-type-options"] == "nosniff"


def test_the_api_docs_load_nothing_from_elsewhere(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/docs").text
    assert "http://" not in page.replace(server.url, "") and "https://" not in page


def test_many_sessions_from_one_address_share_its_event_budget() -> None:
    """Opening sessions does not multiply what one address may post."""
    server = make_server(client_event_rate=1.0, client_event_burst=30)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            codes = []
            for _ in range(4):
                session, auth = new_session(client)
                batch = [{"session": session, "aid": i, "type": "clicks"} for i in range(10)]
                codes.append(client.post("/events", json=batch, headers=auth).status_code)
            assert codes == [202, 202, 202, 429]
    finally:
        server.close()


def test_a_refused_request_spends_no_budget() -> None:
    now = [0.0]
    buckets = Buckets(rate=1.0, burst=10, clock=lambda: now[0])
    assert buckets.wait("a", 11) == float("inf") and buckets.wait("a", 10) == 0.0
    assert buckets.take("a", 10) == 0.0 and buckets.wait("a", 1) == pytest.approx(1.0)


def test_reads_of_lists_are_rate_limited() -> None:
    server = make_server(read_rate=2.0)
    try:
        codes = [httpx.get(f"{server.url}/sessions/42/recommendations").status_code
                 for _ in range(6)]
        assert codes[:4] == [200] * 4 and 429 in codes[4:]
    finally:
        server.close()


@pytest.mark.parametrize("token", ["v1.1².x", "v1.5.é", "v1.٣.abc", "ü"])
def test_tokens_with_other_characters_are_refused_not_crashed(server: LiveServer,
                                                               token: str) -> None:
    assert token_session(b"k", token) is None
    url = f"{server.ws_url}/ws/sessions/{FIRST_SHOPPER_ID + 1}?token={token}"
    assert closed_code(url) == 4401
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{server.ws_url}/ws/sessions/1²", open_timeout=10)
    assert refused.value.response.status_code == 422
