"""The shop page in a real headless Chromium against a real server.

Each test gets its own live server seeded with generated sessions, and its own browser context
(a new shopper with empty localStorage) in one Chromium shared by the module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from producers.generator import GeneratorConfig, generate_sessions
from stream.events import CARTS, CLICKS, Event

LiveServer = Any  # tests/conftest.py's LiveServer, handed in by its fixture

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: Where the layout test leaves its screenshot, for a person to look at.
SCREENSHOT = Path(tempfile.gettempdir()) / "liverec-page.png"
TIMEOUT_MS = 10_000


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


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    context.close()


def aids_in(scope: Any, testid: str) -> list[int]:
    """The aids of the items shown under ``[data-testid=testid]`` inside ``scope``."""
    return [int(a) for a in scope.locator(f"[data-testid={testid}] [data-aid]").evaluate_all(
        "els => els.map(e => e.dataset.aid)")]


def publish(server: LiveServer, events: list[Event]) -> None:
    before = server.runtime.pipeline.events_applied
    server.call(server.runtime.publish(events))
    wait_for(lambda: server.runtime.pipeline.events_applied >= before + len(events),
             what="published events")


def test_page_loads_without_console_errors_and_fills_three_rails(
        server: LiveServer, page: Any) -> None:
    """The page loads with no console or page errors and each rail shows 20 items."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    for rail in ("rail-clicks", "rail-carts", "rail-orders"):
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid={rail}] [data-testid=rail-item]').length"
            " === 20")
    page.wait_for_selector("[data-testid=shelf-item]")
    page.wait_for_selector("[data-testid=live-shopper] [data-testid=live-rail-clicks] [data-aid]")
    page.wait_for_timeout(300)  # let late fetches and sockets report any error
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert errors == []


def test_add_to_cart_updates_rails_and_your_session(server: LiveServer, page: Any) -> None:
    """Carting a shelf item bumps the version, brings the item and its neighbours into the
    rails (flagged as new) and lists the event under "Your session"."""
    page.goto(server.url)
    page.wait_for_selector("[data-testid=rail-carts] [data-testid=rail-item]")
    version = int(page.text_content("[data-testid=version]") or "0")
    card = page.locator("[data-testid=shelf-item]").nth(3)
    aid = int(card.get_attribute("data-aid") or "-1")
    name = card.locator(".card-name").text_content()
    card.get_by_test_id("action-cart").click()

    page.wait_for_function(
        f"Number(document.querySelector('[data-testid=version]').textContent) > {version}")
    covis = server.runtime.pipeline.covis
    neighbours = {b for matrix in ("clicks", "carts_orders") for b, _ in covis.top(matrix, aid)}
    rails = ("rail-clicks", "rail-carts", "rail-orders")
    shown = {a for rail in rails for a in aids_in(page, rail)}
    assert aid in shown
    assert not neighbours or shown & neighbours
    assert page.locator("[data-testid=rail-item].is-new").count() > 0
    event = page.get_by_test_id("session-event").first
    assert event.get_attribute("data-type") == "carts"
    assert name and name in (event.text_content() or "")


def test_live_shoppers_follow_their_sessions(server: LiveServer, page: Any) -> None:
    """The live panel shows rails of replayed sessions that change when those sessions act."""
    page.goto(f"{server.url}/?rotate=0")  # hold the shown sessions still while we act
    card = page.get_by_test_id("live-shopper").first
    card.locator("[data-testid=live-rail-clicks] [data-aid]").first.wait_for()
    session = int(card.get_attribute("data-session") or "-1")
    version = int(card.get_attribute("data-version") or "0")
    before = aids_in(card, "live-rail-clicks")

    state = server.runtime.pipeline.sessions.get(session)
    ts = (state.max_ts if state is not None else server.runtime.now_ms()) + 1000
    fresh = [a for a in range(500) if a not in before][:3]
    publish(server, [Event(session, aid, ts + i * 1000, CLICKS) for i, aid in enumerate(fresh)]
            + [Event(session, fresh[-1], ts + 5000, CARTS)])

    page.wait_for_function("([el, v]) => Number(el.dataset.version) > v",
                           arg=[card.element_handle(), version])
    after = aids_in(card, "live-rail-clicks")
    assert after != before
    assert fresh[-1] in after


def test_operations_strip_counts_events(server: LiveServer, page: Any) -> None:
    """The operations strip shows the number of events the pipeline applied."""
    page.goto(server.url)
    page.wait_for_function(
        "Number(document.querySelector('[data-testid=ops-events]').textContent"
        ".replace(/,/g, '')) > 0")
    shown = int((page.text_content("[data-testid=ops-events]") or "0").replace(",", ""))
    assert 0 < shown <= server.runtime.pipeline.events_applied


def test_operations_strip_shows_prequential_recall(server: LiveServer, page: Any) -> None:
    """Once events of sampled sessions were judged, the page shows recall per objective,
    the same figure /stats reports."""
    wait_for(lambda: server.runtime.pipeline.prequential.judged[0] > 0, what="judged clicks")
    page.goto(server.url)
    page.wait_for_function(
        "!document.querySelector('#ops-recall-item').hidden && "
        "/^[01]\\.\\d{3}$/.test(document.querySelector('#ops-recall-clicks').textContent)")
    shown = float(page.text_content("#ops-recall-clicks") or "nan")
    recall = server.runtime.pipeline.prequential.recall()["clicks"]
    assert recall is not None and abs(shown - recall) < 0.05  # it moves while the page polls
