"""deploy/grafana/ovserve.json: a Grafana dashboard that loads (its shape checked as Grafana
reads it), and whose every query names a metric a running server exposes (an LLM on a fake
engine with LoRA slots, a Python graph and a plain model, OVMS's names and both admission
limits on, one request refused). The same server
shows OVMS's names for a plain model."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ovserve.app import ServerSettings, start
from ovserve.engine import EngineConfig, EngineRegistry
from ovserve.engine.fake import FakeEngine
from ovserve.serving.server_config import load_server_config
from ovserve.transport.metrics.config import FAMILIES
from tests.conftest import REPO
from tests.engine.model_files import save, unary
from tests.transport.fake_server import LLM, write_config
from tests.transport.metrics_text import names, value
from tests.transport.server import Endpoints, free_port

DASHBOARD = REPO / "deploy/grafana/ovserve.json"
METRIC = re.compile(r"\b(?:vllm:[a-z0-9_:]+|ovserve_[a-z0-9_]+|ovms_[a-z0-9_]+)")
PANEL_TYPES = {"row", "timeseries", "table", "stat", "gauge"}


def dashboard() -> dict:  # type: ignore[type-arg]
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def queries(data: dict) -> list[str]:  # type: ignore[type-arg]
    exprs = [t["expr"] for p in data["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in data["templating"]["list"] if "definition" in v]
    return exprs


def test_the_dashboard_has_grafanas_shape() -> None:
    data = dashboard()
    assert isinstance(data["title"], str) and isinstance(data["uid"], str)
    assert isinstance(data["schemaVersion"], int) and data["panels"]
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    taken: set[tuple[int, int]] = set()
    for panel in data["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert isinstance(panel["title"], str) and panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h"))
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells
        if panel["type"] == "row":
            continue
        targets = panel["targets"]
        assert targets and len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            assert isinstance(target["expr"], str) and METRIC.search(target["expr"])
            assert target["datasource"]["uid"] == "${datasource}"
            # every variable a query uses is defined
            for used in re.findall(r"\$(\w+)", target["expr"]):
                assert used.startswith("__") or used in variables, used


@dataclass
class Served(Endpoints):
    engines: list[FakeEngine]


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    config = write_config(tmp_path)
    save(unary("x", "x_plus", [2], 1.0), tmp_path / "models/plus/1")
    data = json.loads(config.read_text())
    data["model_config_list"] = [{"config": {"name": "plus", "base_path": "models/plus"}}]
    config.write_text(json.dumps(data))
    monkeypatch.setenv("OVSERVE_MODEL_PATH", str(tmp_path / "model"))

    engines: list[FakeEngine] = []

    def factory(engine_config: EngineConfig) -> FakeEngine:
        engines.append(FakeEngine(LLM, max_loras=2))
        return engines[-1]

    grpc_port, rest_port = free_port(), free_port()
    running = await start(ServerSettings(
        entries=load_server_config(config), host="127.0.0.1", grpc_port=grpc_port,
        rest_port=rest_port, grace_seconds=1, config_path=config, metrics_enable=True,
        metrics_list=FAMILIES, max_concurrent_requests=1, max_queued_requests=4),
        EngineRegistry(factory))
    try:
        yield Served(grpc_port, rest_port, engines)
    finally:
        await running.stop()


PLUS = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}


async def test_every_panel_names_a_metric_a_running_server_has(server: Served) -> None:
    async with httpx.AsyncClient(base_url=server.rest_url, timeout=30) as http:
        # one stream held in flight (the engine paused), so a second request is refused
        (engine,) = server.engines
        engine.pause()
        held = asyncio.create_task(http.post("/v1/completions", json={
            "model": LLM, "prompt": "a b", "max_tokens": 3, "stream": True}))
        while value((await http.get("/metrics")).text, "ovserve_requests_in_flight") < 1:
            await asyncio.sleep(0.02)
        refused = await http.post("/v1/completions", json={"model": LLM, "prompt": "c"})
        assert refused.status_code == 429
        engine.resume()
        reply = await held
        assert reply.status_code == 200
        assert (await http.post("/v2/models/plus/infer", json=PLUS)).status_code == 200
        bad = {"inputs": [{**PLUS["inputs"][0], "name": "nope"}]}
        assert (await http.post("/v2/models/plus/infer", json=bad)).status_code == 400
        text = (await http.get("/metrics")).text
    present = names(text)
    for query in queries(dashboard()):
        for metric in METRIC.findall(query):
            assert metric in present, f"{metric} (in {query!r}) is not served"
    # the admission panels' series: the refusal, the limits
    assert value(text, "ovserve_requests_rejected_total", reason="max_concurrent_requests",
                 interface="openai") == 1
    assert value(text, "ovserve_admission_limit", limit="max_queued_requests") == 4

    # OVMS's names for a plain model: one success and one failure over REST, version 1
    labels = {"name": "plus", "api": "KServe", "interface": "REST", "method": "ModelInfer",
              "version": "1"}
    assert value(text, "ovms_requests_success", **labels) == 1
    assert value(text, "ovms_requests_fail", **labels) == 1
    assert value(text, "ovms_request_time_us_count", name="plus", interface="REST",
                 version="1") == 1
    assert value(text, "ovms_inference_time_us_count", name="plus", version="1") == 1
    assert value(text, "ovms_wait_for_infer_req_time_us_count", name="plus", version="1") == 1
    assert value(text, "ovms_infer_req_active", name="plus", version="1") == 0
    assert value(text, "ovms_current_requests", name="plus", version="1") == 0
    assert value(text, "ovms_streams", name="plus", version="1") >= 1
    # a graph's KServe and V3 calls are counted under the graph's own families, not these
    assert value(text, "ovms_requests_accepted", name=LLM, api="V3", method="Stream") == 1
    assert value(text, "ovms_responses", name=LLM, api="V3", method="Stream") >= 3
