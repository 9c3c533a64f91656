"""What the browser tests share: Chromium, the page's rails and versions, a shopper's
token, two shoppers at once. Their fixtures (``server``, ``browser``, ``page``) are in
``tests/conftest.py``."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.events import Event

LiveServer = Any  # tests/conftest.py's LiveServer, handed in by its fixture

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


def open_page(browser: Any, **context: Any) -> Any:
    opened = browser.new_context(**(context or DESKTOP)).new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    return opened


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
