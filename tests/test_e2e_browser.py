"""The shop page in a real headless Chromium against a real server.

Each test gets its own live server seeded with generated sessions, and its own browser context
(a new shopper with empty localStorage) in one Chromium shared by the module. The server sends
its content security policy, so the page runs here as it does for a person; predicates polled
in the page are functions (``() => ...``), which the policy allows, not strings to evaluate.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_page import (
    DESKTOP,
    PHONE,
    RAILS,
    SOURCES,
    LiveServer,
    aids_in,
    open_page,
    publish,
    reasons,
    screenshot,
    shopper,
    two_shoppers,
    version,
    wait_rails,
    wait_version_above,
)

from stream.events import CARTS, CLICKS, Event

pytestmark = pytest.mark.e2e


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
