"""The compose ``monitoring`` profile, checked without Docker: Prometheus scrapes what the
code serves, and every panel of the provisioned dashboard queries metrics the code exports
(a renamed metric fails here, not on an operator's empty graph)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from distributed.worker_stats import PHASES, WorkerMetrics, WorkerStats
from liverec.runtime import security
from liverec.settings import Settings
from web.app import _Metrics
from web.hub import RecommendationHub

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "liverec.json"


def exposition(registry: CollectorRegistry) -> set[str]:
    """The sample names a registry exposes, as Prometheus stores them."""
    text = generate_latest(registry).decode()
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines()
            if line and not line.startswith("#")}


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Per scrape job, the names a worker's and a web node's ``/metrics`` give once every
    figure has been measured."""
    stats = WorkerStats(processed=5, rejected=1, lag={0: 3, 1: 0}, assigned=[0, 1],
                        judging={"judged_clicks": 4, "hits_clicks": 2, "judged_carts": 1,
                                 "hits_carts": 1, "judged_orders": 1, "hits_orders": 0})
    stats.list_delay.observe(0.02)
    worker = CollectorRegistry()
    worker.register(WorkerMetrics(stats))  # type: ignore[arg-type]

    hub = RecommendationHub()
    hub.latencies_ms.extend([3.0, 5.0, 40.0])
    web = _Metrics(hub, {"accepted": 3, "rejected": 1}, security(Settings(), "s" * 43))
    web.security.refused["rate_limited"] += 1
    web.stats = {"events": 5, "sessions": 2, "judged_clicks": 4, "hits_clicks": 2}
    registry = CollectorRegistry()
    registry.register(web)  # type: ignore[arg-type]
    return {"liverec-worker": exposition(worker), "liverec-web": exposition(registry)}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel["targets"]]


def test_the_dashboard_loads_and_shows_what_an_operator_asks(
        dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "liverec" and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Events per second", "Lag per partition", "Batch phases", "Push latency",
            "Prequential recall@20", "Rejects"} <= titles
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])


def test_every_query_names_a_metric_the_code_exports_under_its_job(
        dashboard: dict[str, Any], exported: dict[str, set[str]]) -> None:
    jobs = set(exported)
    for title, expr in queries(dashboard):
        named_jobs = set(re.findall(r'job="([^"]+)"', expr))
        assert named_jobs <= jobs, (title, expr)
        names = set(re.findall(r"\bliverec_[a-z0-9_]+", expr))
        # every query reads liverec's metrics, or Prometheus' own ``up`` of liverec's jobs
        assert names or (re.match(r"count\(up\{", expr) and named_jobs), (title, expr)
        for name in names:
            # a metric with a job's label must be that job's; otherwise any job's will do
            where = named_jobs or jobs
            assert any(name in exported[job] for job in where), (title, name, where)


def test_the_batch_phases_panel_knows_every_phase(exported: dict[str, set[str]]) -> None:
    assert "liverec_worker_seconds_total" in exported["liverec-worker"]
    assert set(PHASES) == {"load", "apply", "wait", "store", "lists", "compact"}


def test_prometheus_scrapes_the_ports_the_services_serve(dashboard: dict[str, Any]) -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"liverec-worker", "liverec-web"}
    worker = jobs["liverec-worker"]["dns_sd_configs"][0]
    assert worker["names"] == ["worker"]
    assert str(worker["port"]) == compose["worker"]["environment"]["LIVEREC_METRICS_PORT"]
    web = jobs["liverec-web"]["dns_sd_configs"][0]
    assert web["names"] == ["web"] and "--port" in compose["web"]["command"]
    assert str(web["port"]) == compose["web"]["command"][compose["web"]["command"].index(
        "--port") + 1]
    used = {job for _, expr in queries(dashboard) for job in re.findall(r'job="([^"]+)"', expr)}
    assert used <= set(jobs)


def test_grafana_is_provisioned_with_this_datasource_and_dashboard(
        dashboard: dict[str, Any]) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    grafana, prometheus = compose["grafana"], compose["prometheus"]
    assert grafana["profiles"] == prometheus["profiles"] == ["monitoring"]
    for service in (grafana, prometheus):  # official images, pinned
        image = service["image"]
        assert image.split(":")[0] in ("grafana/grafana", "prom/prometheus")
        assert ":" in image and not image.endswith(":latest")
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in grafana["volumes"]}
    assert (REPO / mounts["/etc/grafana/provisioning"]).is_dir()
    assert (REPO / mounts["/var/lib/grafana/dashboards"] / DASHBOARD.name).is_file()
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/liverec.yml")
                              .read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml")
                            .read_text())["datasources"][0]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]} | {
        target["datasource"]["uid"] for panel in dashboard["panels"]
        for target in panel["targets"]}
    assert uids == {source["uid"]}
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"/var/lib/grafana/dashboards/{DASHBOARD.name}"
    prom_mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]
                   if v.startswith("./")}
    assert (REPO / prom_mounts["/etc/prometheus/prometheus.yml"]).is_file()
