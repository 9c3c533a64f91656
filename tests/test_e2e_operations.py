"""The page's operations in a real headless Chromium against a real server: its strip of
figures and charts, the replay's progress, the API docs offline and the method switch
(each test its own live server and browser context, as in ``test_e2e_browser.py``)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from e2e_page import (
    VENDOR,
    LiveServer,
    aids_in,
    reasons,
    screenshot,
    version,
    wait_for,
    wait_rails,
    wait_version_above,
)

pytestmark = pytest.mark.e2e


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
