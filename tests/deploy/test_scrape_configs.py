"""The Prometheus scrape configs of the KServe and Ray Serve examples: they parse, scrape the
port and path the ovserve runtime serves its metrics on (Ray: discover the replicas at the path
the replicas list themselves on, through Serve's proxy; tests/test_ray_serve.py scrapes them),
and that path answers Prometheus's text format on a server (fake engines) with vLLM's and
ovserve's names in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from tests.conftest import REPO
from tests.transport.fake_server import fake_server

KSERVE = REPO / "deploy/kserve"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_kserve_scrape_config_matches_the_runtime() -> None:
    runtime = load(KSERVE / "servingruntime.yaml")
    annotations = runtime["spec"]["annotations"]
    (container,) = runtime["spec"]["containers"]
    (port,) = container["ports"]
    assert annotations["prometheus.kserve.io/port"] == str(port["containerPort"]) == "8080"
    config = load(KSERVE / "prometheus/prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    rules = job["relabel_configs"]
    kept = {tuple(r["source_labels"]): r["regex"] for r in rules if r.get("action") == "keep"}
    assert kept[("__meta_kubernetes_pod_container_port_number",)] == str(port["containerPort"])
    path = next(r for r in rules if r.get("target_label") == "__metrics_path__")
    assert path["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_kserve_io_path"]
    monitor = load(KSERVE / "prometheus/podmonitor.yaml")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint["path"] == annotations["prometheus.kserve.io/path"] == "/metrics"


def test_ray_scrape_config_discovers_the_replicas_through_the_proxy() -> None:
    from ovserve.ray_metrics import TARGETS_PATH

    config = load(REPO / "deploy/ray/prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    serve = load(REPO / "examples/ray_serve.yaml")
    (discovery,) = jobs["ovserve"]["http_sd_configs"]
    assert discovery["url"].endswith(f":{serve['http_options']['port']}{TARGETS_PATH}")
    assert jobs["ovserve"]["metrics_path"] == "/metrics"
    assert jobs["ray"]["file_sd_configs"][0]["files"] == [
        "/tmp/ray/prom_metrics_service_discovery.json"]


async def test_the_scraped_path_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with fake_server(tmp_path, monkeypatch) as server, \
            httpx.AsyncClient(base_url=server.rest_url) as http:
        reply = await http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    for name in ("vllm:num_requests_waiting", "ovserve_requests_in_flight",
                 "ovserve_requests_rejected_total"):
        assert name in reply.text
