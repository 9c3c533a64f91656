"""The shop page in a real headless Chromium against a real server.

Each test gets its own live server seeded with generated sessions, and its own browser context
(a new shopper with empty localStorage) in one Chromium shared by the module. The server sends
its content security policy, so the page runs here as it does for a person; predicates polled
in the page are functions (``() => ...``), which the policy allows, not strings to evaluate.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from producers.generator import GeneratorConfig, generate_sessions
from stream.events import CARTS, CLICKS, Event

LiveServer = Any  # tests/conftest.py's LiveServer, handed in by its fixture

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: Where screenshots are left for a person to look at (CI keeps them as artefacts).
ARTEFACTS = Path(os.environ.get("LIVEREC_ARTEFACTS") or REPO / "out" / "screenshots")
VENDOR = REPO / "web" / "static" / "vendor"
TIMEOUT_MS = 10_000
RAILS = ("rail-clicks", "rail-carts", "rail-orders")
DESKTOP = {"viewport": {"width": 1440, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
SOURCES = {"you_viewed", "you_carted", "you_bought", "viewed_with", "bought_with",
           "viewed_after", "similar", "popular_now", "popular"}


def chromium_path() -> str:
    """The system Chromium. CI must run these tests, so there a missing browser fails."""
    path = os.environ.get("LIVEREC_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not path:
        message = "Chromium not found: install it or set LIVEREC_CHROMIUM"
        if os.environ.get("CI") or os.environ.get("LIVEREC_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_for(condition: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def screenshot(page: Any, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    """A live server that has applied 300 generated sessions, its clock at their time."""
    sessions = generate_sessions(GeneratorConfig(sessions=300, items=500, seed=1))
    events = sorted((e for _, evs in sessions for e in evs), key=lambda e: e.ts)
    publish(live_server, events)
    # The shopper's events take the stream's time, so they fall among the generated ones
    # instead of years after them.
    live_server.runtime.replay_clock(events[0].ts, None)
    return live_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser: Any, **context: Any) -> Any:
    opened = browser.new_context(**(context or DESKTOP)).new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    return opened


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    opened = open_page(browser)
    yield opened
    opened.context.close()


def aids_in(scope: Any, testid: str) -> list[int]:
    """The aids of the items shown under ``[data-testid=testid]`` inside ``scope``."""
    return [int(a) for a in scope.locator(f"[data-testid={testid}] [data-aid]").evaluate_all(
        "els => els.map(e => e.dataset.aid)")]


def publish(server: LiveServer, events: list[Event]) -> None:
    before = server.runtime.pipeline.events_applied
    server.call(server.runtime.publish(events))
    wait_for(lambda: server.runtime.pipeline.events_applied >= before + len(events),
             what="published events")


@contextlib.contextmanager
def two_shoppers(server: LiveServer, browser: Any) -> Iterator[tuple[Any, Any]]:
    """Two browsers on the page, each a new shopper with its rails filled."""
    a, b = open_page(browser), open_page(browser)
    try:
        for page in (a, b):
            page.goto(server.url)
            wait_rails(page)
        yield a, b
    finally:
        a.context.close()
        b.context.close()


def version(page: Any) -> int:
    return int(page.text_content("[data-testid=version]") or "0")


def wait_version_above(page: Any, value: int) -> None:
    page.wait_for_function(
        "v => Number(document.querySelector('[data-testid=version]').textContent) > v",
        arg=value)


def wait_rails(page: Any) -> None:
    """All three rails hold their 20 items, after the first push."""
    page.wait_for_function(
        "rails => rails.every(r => document.querySelectorAll("
        "`[data-testid=${r}] [data-testid=rail-item]`).length === 20)", arg=list(RAILS))


def shopper(page: Any) -> dict[str, Any]:
    """The session and token the page keeps for its shopper."""
    stored = page.evaluate("() => JSON.parse(localStorage.getItem('liverec.shopper'))")
    assert stored and isinstance(stored["session"], int) and stored["token"]
    return dict(stored)


def reasons(page: Any) -> list[dict[str, str]]:
    """Every rail card's reason: its source, text and title (the full name of ``via``)."""
    return list(page.locator("[data-testid=rail-item]").evaluate_all(
        """els => els.map(e => {
            const why = e.querySelector('[data-testid=rail-why]');
            return {source: e.dataset.source, text: why ? why.textContent : '',
                    title: why ? why.title : ''};
        })"""))


def test_page_loads_without_console_errors_and_fills_three_rails(
        server: LiveServer, page: Any) -> None:
    """The page loads under the server's content security policy with no console or page
    errors, gets a private session, and each rail shows 20 items, each saying why."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(server.url)
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    wait_rails(page)
    page.wait_for_selector("[data-testid=shelf-item] svg.pic")
    page.wait_for_selector("[data-testid=live-shopper] [data-testid=live-rail-clicks] [data-aid]")
    page.wait_for_timeout(300)  # let late fetches and sockets report any error
    screenshot(page, "page-desktop")
    assert errors == []
    assert str(shopper(page)["session"]) == page.text_content("[data-testid=session-id]")
    found = reasons(page)
    assert len(found) == 60 and all(r["source"] in SOURCES and r["text"] for r in found)
    for rail in ("clicks", "carts", "orders"):
        assert page.text_content(f"[data-testid=rail-count-{rail}]") == "20 items"


def test_add_to_cart_updates_rails_and_your_session(server: LiveServer, page: Any) -> None:
    """Carting a shelf item bumps the version, brings the item and its neighbours into the
    rails (flagged as new) and lists the event under "Your session", sent then applied."""
    page.goto(server.url)
    page.wait_for_selector("[data-testid=rail-carts] [data-testid=rail-item]")
    before = version(page)
    card = page.locator("[data-testid=shelf-item]").nth(3)
    aid = int(card.get_attribute("data-aid") or "-1")
    name = card.locator(".card-name").text_content()
    card.get_by_test_id("action-cart").click()

    wait_version_above(page, before)
    covis = server.runtime.pipeline.covis
    neighbours = {b for matrix in ("clicks", "carts_orders") for b, _ in covis.top(matrix, aid)}
    shown = {a for rail in RAILS for a in aids_in(page, rail)}
    assert aid in shown
    assert not neighbours or shown & neighbours
    assert page.locator("[data-testid=rail-item].is-new").count() > 0
    event = page.get_by_test_id("session-event").first
    assert event.get_attribute("data-type") == "carts"
    assert name and name in (event.text_content() or "")
    page.wait_for_function("() => document.querySelector('[data-testid=session-event]')"
                           ".dataset.status === 'applied'")
    assert "applied" in (event.get_by_test_id("event-status").text_content() or "")


def test_a_shoppers_flow_updates_rails_that_say_why(server: LiveServer, page: Any) -> None:
    """View, cart and buy: each event is acknowledged (applied at the version it brings),
    the rails follow, and every card says why it is there, naming the shopper's own items
    behind the co-visitation reasons."""
    page.goto(server.url)
    wait_rails(page)
    cards = page.locator("[data-testid=shelf-item]")
    acted: dict[int, str] = {}
    for index, action in ((1, "view"), (1, "cart"), (4, "view"), (4, "buy")):
        card = cards.nth(index)
        acted[int(card.get_attribute("data-aid") or "-1")] = card.locator(
            ".card-name").text_content() or ""
        shown = version(page)
        card.get_by_test_id(f"action-{action}").click()
        wait_version_above(page, shown)
        page.wait_for_function("() => document.querySelector('[data-testid=session-event]')"
                               ".dataset.status === 'applied'")
    assert version(page) == 4
    events = page.get_by_test_id("session-event")
    assert events.count() == 4
    assert [events.nth(i).get_attribute("data-status") for i in range(4)] == ["applied"] * 4
    assert [events.nth(i).get_attribute("data-type") for i in range(4)] == [
        "orders", "clicks", "carts", "clicks"]
    wait_rails(page)
    found = reasons(page)
    assert all(r["source"] in SOURCES and r["text"] for r in found)
    own = [r for r in found if r["source"] in ("you_viewed", "you_carted", "you_bought")]
    assert own, "the shopper's own items are among the recommendations"
    linked = [r for r in found if r["source"] in ("viewed_with", "bought_with", "viewed_after")]
    assert linked, "co-visitation brings neighbours of the shopper's items"
    for reason in linked:  # via is one of the shopper's items, named from the catalog
        assert any(name in reason["title"] for name in acted.values()), reason
        assert reason["text"].split(" ")[0] in ("Viewed", "Bought")


def test_two_shoppers_are_isolated(server: LiveServer, browser: Any) -> None:
    """Two browsers get their own private sessions; one's events never reach the other."""
    with two_shoppers(server, browser) as (a, b):
        shopper_a, shopper_b = shopper(a), shopper(b)
        assert shopper_a["session"] != shopper_b["session"]
        assert shopper_a["token"] != shopper_b["token"]
        version_b, rails_b = version(b), [aids_in(b, rail) for rail in RAILS]

        for index in (2, 5):
            shown = version(a)
            a.locator("[data-testid=shelf-item]").nth(index).get_by_test_id("action-cart").click()
            wait_version_above(a, shown)
        b.wait_for_timeout(500)  # time for a wrong push to arrive
        assert version(b) == version_b
        assert [aids_in(b, rail) for rail in RAILS] == rails_b
        assert b.get_by_test_id("session-event").count() == 0
        state = server.runtime.pipeline.sessions.get(shopper_b["session"])
        assert state is None or not state.aids


def test_watching_another_private_session_is_refused(server: LiveServer, browser: Any) -> None:
    """A page's WebSocket to another shopper's session closes with 4401 without a token and
    4403 with its own token; with the right token it gets the lists."""
    with two_shoppers(server, browser) as (a, b):
        session_a, session_b = shopper(a), shopper(b)
        subscribe = """([session, token]) => new Promise(resolve => {
            const query = token ? `?token=${encodeURIComponent(token)}` : '';
            const ws = new WebSocket(`ws://${location.host}/ws/sessions/${session}${query}`);
            ws.onmessage = (m) => { resolve({pushed: JSON.parse(m.data).session}); ws.close(); };
            ws.onclose = (e) => resolve({code: e.code, reason: e.reason});
            setTimeout(() => resolve({timeout: true}), 5000);
        })"""
        refused = a.evaluate(subscribe, [session_b["session"], None])
        assert refused["code"] == 4401, refused
        other = a.evaluate(subscribe, [session_b["session"], session_a["token"]])
        assert other["code"] == 4403, other
        own = a.evaluate(subscribe, [session_a["session"], session_a["token"]])
        assert own == {"pushed": session_a["session"]}
        public = aids_in(a, "live-rail-clicks")  # replayed shoppers need no token
        assert public


def test_a_refused_token_brings_a_new_session(server: LiveServer, page: Any) -> None:
    """A stored token the server no longer accepts (its secret changed) is refused on the
    WebSocket; the page then gets a new session once, instead of retrying the old one."""
    page.goto(server.url)
    wait_rails(page)
    old = shopper(page)
    page.evaluate("s => localStorage.setItem('liverec.shopper', JSON.stringify(s))",
                  {"session": old["session"], "token": f"v1.{old['session']}.not-a-signature"})
    page.reload()
    page.wait_for_function(
        "old => document.querySelector('[data-testid=session-id]').textContent !== String(old)"
        " && document.querySelector('[data-testid=connection]').dataset.state === 'open'",
        arg=old["session"])
    wait_rails(page)
    renewed = shopper(page)
    assert renewed["session"] != old["session"]
    shown = version(page)
    page.locator("[data-testid=shelf-item]").first.get_by_test_id("action-cart").click()
    wait_version_above(page, shown)
    assert page.get_by_test_id("session-event").first.get_attribute("data-status") in (
        "sent", "applied")


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_rails_stay_in_view_while_shopping(server: LiveServer, browser: Any,
                                           device: str) -> None:
    """At 1440x900 and on a 390x844 phone, after a click on a shelf item further down the
    shop, all three rails are on screen."""
    page = open_page(browser, **(DESKTOP if device == "desktop" else PHONE))
    try:
        page.goto(server.url)
        wait_rails(page)
        shown = version(page)
        card = page.locator("[data-testid=shelf-item]").nth(9)
        card.get_by_test_id("action-view").click()
        wait_version_above(page, shown)
        page.wait_for_timeout(400)  # let the new cards' entrance settle for the picture
        width, height = page.viewport_size["width"], page.viewport_size["height"]
        assert page.evaluate("() => window.scrollY") > 0, "the shop was scrolled to the item"
        for rail in RAILS:
            box = page.get_by_test_id(rail).bounding_box()
            assert box is not None, rail
            assert box["y"] < height and box["y"] + box["height"] > 0, (rail, box)
            assert box["x"] < width and box["x"] + box["width"] > 0, (rail, box)
            first = page.locator(f"[data-testid={rail}] [data-testid=rail-item]").first
            assert first.is_visible()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        screenshot(page, f"rails-in-view-{device}")
        if device == "phone":  # the operations figures leave the first screen to the shop
            page.evaluate("() => window.scrollTo(0, 0)")
            assert page.get_by_test_id("ops-charts").is_hidden()
            assert page.get_by_test_id("shelf-item").first.bounding_box()["y"] < height * 0.6
            screenshot(page, "phone-top")
    finally:
        page.context.close()


def test_an_event_that_leaves_the_lists_unchanged_is_acknowledged(
        server: LiveServer, page: Any) -> None:
    """Buying the same item again moves the version even when the lists stay as they were:
    the page marks the event applied and shows the new version."""
    page.goto(server.url)
    wait_rails(page)
    card = page.locator("[data-testid=shelf-item]").nth(2)
    shown = version(page)
    card.get_by_test_id("action-buy").click()
    wait_version_above(page, shown)
    unchanged = 0
    for _ in range(3):
        shown, before = version(page), [aids_in(page, rail) for rail in RAILS]
        card.get_by_test_id("action-buy").click()
        wait_version_above(page, shown)
        page.wait_for_function("() => document.querySelector('[data-testid=session-event]')"
                               ".dataset.status === 'applied'")
        assert version(page) == shown + 1
        unchanged += [aids_in(page, rail) for rail in RAILS] == before
    assert unchanged > 0, "some repeat left the lists as they were"
    statuses = page.get_by_test_id("session-event").evaluate_all(
        "els => els.map(e => e.dataset.status)")
    assert statuses == ["applied"] * 4


def test_live_shoppers_follow_their_sessions(server: LiveServer, page: Any) -> None:
    """The live panel shows rails of replayed sessions that change when those sessions act."""
    page.goto(f"{server.url}/?rotate=0")  # hold the shown sessions still while we act
    card = page.get_by_test_id("live-shopper").first
    card.locator("[data-testid=live-rail-clicks] [data-aid]").first.wait_for()
    session = int(card.get_attribute("data-session") or "-1")
    shown = int(card.get_attribute("data-version") or "0")
    before = aids_in(card, "live-rail-clicks")

    state = server.runtime.pipeline.sessions.get(session)
    ts = (state.max_ts if state is not None else server.runtime.now_ms()) + 1000
    fresh = [a for a in range(500) if a not in before][:3]
    publish(server, [Event(session, aid, ts + i * 1000, CLICKS) for i, aid in enumerate(fresh)]
            + [Event(session, fresh[-1], ts + 5000, CARTS)])

    page.wait_for_function("([el, v]) => Number(el.dataset.version) > v",
                           arg=[card.element_handle(), shown])
    after = aids_in(card, "live-rail-clicks")
    assert after != before
    assert fresh[-1] in after


def test_operations_strip_counts_events(server: LiveServer, page: Any) -> None:
    """The operations strip shows the number of events the pipeline applied."""
    page.goto(server.url)
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=ops-events]').textContent"
        ".replace(/,/g, '')) > 0")
    shown = int((page.text_content("[data-testid=ops-events]") or "0").replace(",", ""))
    assert 0 < shown <= server.runtime.pipeline.events_applied


def test_operations_strip_shows_prequential_recall(server: LiveServer, page: Any) -> None:
    """Once events of sampled sessions were judged, the page shows recall per objective,
    the same figure /stats reports."""
    wait_for(lambda: server.runtime.pipeline.prequential.judged[0] > 0, what="judged clicks")
    page.goto(server.url)
    page.wait_for_function(
        "() => !document.querySelector('#ops-recall-item').hidden && "
        "/^[01]\\.\\d{3}$/.test(document.querySelector('#ops-recall-clicks').textContent)")
    shown = float(page.text_content("#ops-recall-clicks") or "nan")
    recall = server.runtime.pipeline.prequential.recall()["clicks"]
    assert recall is not None and abs(shown - recall) < 0.05  # it moves while the page polls


def test_rails_say_what_they_optimise_and_models_face_their_priors(
        server: LiveServer, page: Any) -> None:
    """Each rail names its objective's goal; once a re-ranker has judged events, the strip
    shows its recall beside its prior's, the one serving in bold, as the runtime counts."""
    reranker = server.runtime.pipeline.reranker
    assert reranker is not None
    wait_for(lambda: reranker.rankers[0].judged > 0, what="judged clicks")
    page.goto(server.url)
    goals = {t: page.text_content(f"[data-testid=rail-goal-{t}]") or ""
             for t in ("clicks", "carts", "orders")}
    assert "next" in goals["clicks"] and "cart" in goals["carts"] and "buy" in goals["orders"]
    page.wait_for_function(
        "() => !document.querySelector('#ops-models-item').hidden && "
        "/^1?\\.\\d{2}\\/1?\\.\\d{2}$/"
        ".test(document.querySelector('#ops-models-clicks').textContent)")
    model, prior = (float(x) for x in
                    (page.text_content("#ops-models-clicks") or "").split("/"))
    ranker = reranker.rankers[0]
    assert abs(model - ranker.model_hits / ranker.judged) < 0.05  # it moves while the page
    assert abs(prior - ranker.prior_hits / ranker.judged) < 0.05  # polls
    bold = page.locator("#ops-models-clicks b").text_content()
    assert bold is not None and float(bold) in (model, prior)
    screenshot(page, "rails-and-models")


def test_operations_charts_plot_rate_latency_and_recall(server: LiveServer, page: Any) -> None:
    """The charts, drawn by the chart library the app serves itself, carry their series'
    names and axis labels."""
    if not (VENDOR / "uPlot.iife.min.js").exists():
        message = "web/static/vendor is missing: run scripts/build-assets.sh (make setup)"
        if os.environ.get("CI") or os.environ.get("LIVEREC_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    page.goto(server.url)
    for chart in ("chart-rate", "chart-latency", "chart-recall"):
        page.wait_for_selector(f"#{chart} .uplot canvas")
    legends = {chart: page.locator(f"#{chart} .u-legend").text_content() or ""
               for chart in ("chart-rate", "chart-latency", "chart-recall")}
    assert "events/s" in legends["chart-rate"]
    assert "p50" in legends["chart-latency"] and "p99" in legends["chart-latency"]
    assert all(t in legends["chart-recall"] for t in ("clicks", "carts", "orders"))
    assert page.get_by_test_id("charts-note").is_hidden()
    page.wait_for_timeout(2200)  # a few samples
    screenshot(page, "operations-charts")


def test_page_works_without_its_chart_library(server: LiveServer, page: Any) -> None:
    """Without the vendor files the page still shops and pushes, and says the charts are
    missing."""
    page.route("**/static/vendor/**", lambda route: route.abort())
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    wait_rails(page)
    page.get_by_test_id("charts-note").wait_for()
    shown = version(page)
    page.locator("[data-testid=shelf-item]").first.get_by_test_id("action-cart").click()
    wait_version_above(page, shown)
    assert errors == []


def test_replay_progress_counts_events_and_shows_eta(server: LiveServer, page: Any) -> None:
    """The replay line counts replayed events out of the total and gives the time left."""
    def stats(route: Any) -> None:
        route.fulfill(json={
            "events": 5000, "sessions": 40, "events_per_s": 120.0, "pushes": 3,
            "latency_ms": {"p50": 2.0, "p90": 4.0, "p99": 9.5}, "recall": None,
            "replay": {"state": "running", "total": 20_000, "replayed": 4_500,
                       "events_per_s": 125.0, "eta_s": 124.0}})

    page.route("**/stats", stats)
    page.goto(server.url)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=ops-replay]').textContent.includes('/')")
    assert page.text_content("[data-testid=ops-replay]") == "4,500 / 20,000"
    assert page.text_content("[data-testid=ops-replay-eta]") == "ETA 2 min"


def test_api_docs_render_offline(live_server: LiveServer, page: Any) -> None:
    """``/docs`` draws Swagger UI from the app's own files: every request stays on the
    server, and the WebSocket is documented beside the REST endpoints."""
    if not (VENDOR / "swagger-ui-bundle.js").exists():
        message = "web/static/vendor is missing: run scripts/build-assets.sh (make setup)"
        if os.environ.get("CI") or os.environ.get("LIVEREC_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(live_server.url)
            or r.url.startswith("data:") else elsewhere.append(r.url))
    page.goto(f"{live_server.url}/docs")
    page.wait_for_selector(".swagger-ui .opblock")
    text = page.text_content(".swagger-ui") or ""
    assert "/events" in text and "/ws/sessions/{session}" in text and "/sessions" in text
    assert elsewhere == []


def test_a_shopper_switches_the_method_that_serves_them(server: LiveServer, page: Any) -> None:
    """The rails say which method serves them; picking another one re-serves them at once
    (the server pushes the new lists), and a new page load keeps the choice."""
    page.goto(server.url)
    wait_rails(page)
    note = page.get_by_test_id("serving-method")
    page.wait_for_function("() => document.querySelector('[data-testid=serving-method]')"
                           ".dataset.method === 'rerank'")
    assert "Re-rankers" in (note.text_content() or "")
    options = page.locator("[data-testid=method-select] option").evaluate_all(
        "els => els.map(e => e.value)")
    assert options == ["rerank", "covis", "popular"]  # no sequence model configured
    before = aids_in(page, "rail-clicks")
    page.get_by_test_id("method-select").select_option("popular")
    page.wait_for_function("() => document.querySelector('[data-testid=serving-method]')"
                           ".dataset.method === 'popular'")
    assert note.text_content() == "Best sellers"
    wait_rails(page)
    popular = aids_in(page, "rail-clicks")
    assert popular == aids_in(page, "rail-carts") == aids_in(page, "rail-orders")
    assert all(r["source"] in ("popular", "popular_now") for r in reasons(page))
    screenshot(page, "method-switch")
    page.reload()
    page.wait_for_function("() => document.querySelector('[data-testid=serving-method]')"
                           ".dataset.method === 'popular'")
    assert page.get_by_test_id("method-select").input_value() == "popular"
    page.get_by_test_id("method-select").select_option("rerank")
    page.wait_for_function("() => document.querySelector('[data-testid=serving-method]')"
                           ".dataset.method === 'rerank'")
    assert before  # the rails were filled before and after
