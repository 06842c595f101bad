"""Metric values against runs whose counts are known, on fake engines and Python graphs in the
test's own event loop: vLLM's names from the engine's measurements, running and waiting while
requests queue, LoRA adapters in lora_requests_info, OVMS's names with OVMS's labels for KServe
calls on Python graphs, and OVMS's rules for turning its families on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient

from ovserve.app import RunningServer, ServerSettings, StartupError, start
from ovserve.engine import EngineConfig, EngineRegistry
from ovserve.engine.adapters import AdapterSource
from ovserve.engine.fake import FakeEngine
from ovserve.serving.server_config import load_server_config
from ovserve.transport.metrics import MetricsConfigError, OvmsMetricsConfig
from ovserve.transport.metrics.config import ADDITIONAL, DEFAULTS
from tests.transport.fake_server import LLM, fake_server
from tests.transport.metrics_text import label_sets, names, value
from tests.transport.server import Endpoints, free_port, write_config

VLLM = {"model_name": LLM}


async def scrape(server: Endpoints) -> str:
    async with httpx.AsyncClient(base_url=server.rest_url) as http:
        return (await http.get("/metrics")).text


async def until(server: Endpoints, check: Callable[[str], bool], what: str,
                seconds: float = 20) -> str:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        text = await scrape(server)
        if check(text):
            return text
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


def completion(tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": LLM, "prompt": "one two three", "max_tokens": tokens, "ignore_eos": True,
            **extra}


# -- vLLM's names on a fake engine -----------------------------------------------------------

async def test_forced_lengths_at_a_concurrency_give_vllm_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """12 requests of 7 forced tokens, 3 at a time, and 2 that stop by themselves (5 tokens):
    every counter and histogram count of vLLM's names follows from those numbers."""
    async with fake_server(tmp_path, monkeypatch, step_seconds=0.002) as server:
        before = await scrape(server)
        limit = asyncio.Semaphore(3)
        prompts: list[int] = []

        async def one(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
            async with limit:
                reply = await http.post("/v1/completions", json=body)
            assert reply.status_code == 200, reply.text
            prompts.append(reply.json()["usage"]["prompt_tokens"])

        async with httpx.AsyncClient(base_url=server.rest_url, timeout=30) as http:
            await asyncio.gather(*(one(http, completion(7)) for _ in range(12)),
                                 *(one(http, completion(20, ignore_eos=False))
                                   for _ in range(2)))
        after = await scrape(server)

    def delta(metric: str, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)

    generated = 12 * 7 + 2 * 5
    assert delta("vllm:request_success_total", finished_reason="length", **VLLM) == 12
    assert delta("vllm:request_success_total", finished_reason="stop", **VLLM) == 2
    assert delta("vllm:request_success_total", finished_reason="abort", **VLLM) == 0
    assert delta("vllm:generation_tokens_total", **VLLM) == generated
    assert delta("vllm:prompt_tokens_total", **VLLM) == sum(prompts)
    assert delta("vllm:request_generation_tokens_sum", **VLLM) == generated
    assert delta("vllm:request_prompt_tokens_sum", **VLLM) == sum(prompts)
    assert delta("vllm:request_params_max_tokens_sum", **VLLM) == 12 * 7 + 2 * 20
    for histogram in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
                      "vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds",
                      "vllm:request_decode_time_seconds", "vllm:request_inference_time_seconds",
                      "vllm:request_generation_tokens",
                      "vllm:request_time_per_output_token_seconds"):
        assert delta(f"{histogram}_count", **VLLM) == 14, histogram
    # the fake engine gives one token per step: one inter-token interval per later token
    assert delta("vllm:inter_token_latency_seconds_count", **VLLM) == generated - 14
    assert delta("vllm:time_per_output_token_seconds_count", **VLLM) == generated - 14
    assert value(after, "vllm:inter_token_latency_seconds_bucket", le="+Inf", **VLLM) == (
        value(after, "vllm:inter_token_latency_seconds_count", **VLLM))
    # every request took at least its steps; e2e covers queue + prefill + decode
    assert delta("vllm:e2e_request_latency_seconds_sum", **VLLM) >= (
        delta("vllm:request_decode_time_seconds_sum", **VLLM))
    # ovserve's own names count the same requests
    assert delta("ovserve_requests_total", servable=LLM, interface="openai") == 14
    assert delta("ovserve_engine_generated_tokens_total", model=LLM) == generated
    assert delta("ovserve_generated_tokens_total", model=LLM) == generated
    assert value(after, "vllm:num_requests_running", **VLLM) == 0
    assert value(after, "vllm:num_requests_waiting", **VLLM) == 0
    assert value(after, "vllm:kv_cache_usage_perc", **VLLM) == 0
    assert not any(n.startswith("ovms_") for n in names(after))  # OVMS's are off by default


async def test_running_and_waiting_move_as_requests_queue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that runs 2 requests at a time: 5 sent while it is held all wait; stepping,
    2 run and 3 wait; when all are done none is left, and 5 queue times were observed."""
    async with fake_server(tmp_path, monkeypatch, step_seconds=0.005, max_running=2) as server:
        engine = server.engine
        engine.pause()
        async with httpx.AsyncClient(base_url=server.rest_url, timeout=60) as http:
            # 300 tokens: a wave of 2 lasts 1.5 s or more, far longer than a scrape
            sent = [asyncio.create_task(http.post("/v1/completions", json=completion(300)))
                    for _ in range(5)]
            text = await until(server, lambda t: value(
                t, "ovserve_engine_requests_active", model=LLM) == 5, "5 requests in")
            assert value(text, "vllm:num_requests_running", **VLLM) == 0
            assert value(text, "vllm:num_requests_waiting", **VLLM) == 5
            engine.resume()
            text = await until(server, lambda t: value(
                t, "vllm:num_requests_running", **VLLM) == 2, "2 running")
            assert value(text, "vllm:num_requests_waiting", **VLLM) == 3
            engine.pause()
            text = await scrape(server)
            assert value(text, "vllm:num_requests_running", **VLLM) == 2
            assert value(text, "vllm:num_requests_waiting", **VLLM) == 3
            assert value(text, "ovserve_engine_requests_running", model=LLM) == 2
            assert value(text, "ovserve_engine_requests_waiting", model=LLM) == 3
            engine.resume()
            replies = await asyncio.gather(*sent)
        assert all(r.status_code == 200 for r in replies)
        text = await scrape(server)
    assert value(text, "vllm:num_requests_running", **VLLM) == 0
    assert value(text, "vllm:num_requests_waiting", **VLLM) == 0
    assert value(text, "vllm:request_queue_time_seconds_count", **VLLM) == 5
    # requests 3 and 4 waited for a wave of 300 steps, request 5 for two
    assert value(text, "vllm:request_queue_time_seconds_sum", **VLLM) >= 4 * 300 * 0.005


async def test_lora_requests_info_lists_running_and_waiting_adapters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with fake_server(tmp_path, monkeypatch, step_seconds=0.005, max_running=1,
                           max_loras=4) as server:
        engine = server.engine
        for name in ("alpha", "beta"):
            engine.adapter_sources[name] = AdapterSource(name, tmp_path / name)
        text = await scrape(server)
        (idle,) = label_sets(text, "vllm:lora_requests_info")
        assert idle == {"max_lora": "4", "running_lora_adapters": "",
                        "waiting_lora_adapters": ""}
        engine.pause()
        async with httpx.AsyncClient(base_url=server.rest_url, timeout=60) as http:
            alpha = asyncio.create_task(http.post("/v1/completions",
                                                  json=completion(300, model="alpha")))
            await until(server, lambda t: value(
                t, "ovserve_engine_requests_active", model=LLM) == 1, "alpha in")
            beta = asyncio.create_task(http.post("/v1/completions",
                                                 json=completion(300, model="beta")))
            await until(server, lambda t: value(
                t, "ovserve_engine_requests_active", model=LLM) == 2, "beta in")
            engine.resume()
            await until(server, lambda t: value(
                t, "vllm:num_requests_running", **VLLM) == 1, "alpha running")
            engine.pause()
            text = await scrape(server)
            engine.resume()
            assert all(r.status_code == 200 for r in await asyncio.gather(alpha, beta))
    (info,) = label_sets(text, "vllm:lora_requests_info")
    assert info == {"max_lora": "4", "running_lora_adapters": "alpha",
                    "waiting_lora_adapters": "beta"}
    assert value(text, "vllm:lora_requests_info") > 1e9  # vLLM's: the time it was written


# -- OVMS's names with OVMS's labels on Python graphs ------------------------------------------

@asynccontextmanager
async def graph_server(tmp_path: Path, **settings: Any) -> AsyncIterator[Endpoints]:
    """The echo / words / endless / fail Python graphs (tests/transport/server.py), in-process."""
    config = write_config(tmp_path)
    handler = tmp_path / "words/model.py"  # its delay file read without leaving it open
    handler.write_text(handler.read_text().replace(
        'float(open(kwargs["base_path"] + "/delay").read())',
        'float(__import__("pathlib").Path(kwargs["base_path"], "delay").read_text())'))
    if "monitoring" in settings:
        data = json.loads(config.read_text())
        data["monitoring"] = settings.pop("monitoring")
        config.write_text(json.dumps(data))
    grpc_port, rest_port = free_port(), free_port()
    running: RunningServer = await start(ServerSettings(
        entries=load_server_config(config), host="127.0.0.1", grpc_port=grpc_port,
        rest_port=rest_port, grace_seconds=1, config_path=config, **settings),
        EngineRegistry(_no_llm))
    try:
        yield Endpoints(grpc_port, rest_port)
    finally:
        await running.stop()


def _no_llm(config: EngineConfig) -> FakeEngine:
    raise AssertionError("no LLM here")


TEXT = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}


def kserve(name: str, interface: str, method: str = "ModelInfer") -> dict[str, str]:
    return {"name": name, "api": "KServe", "interface": interface, "method": method}


async def test_ovms_names_count_kserve_calls_on_python_graphs(tmp_path: Path) -> None:
    """2 good REST infers and 1 gRPC infer on echo, 1 refused before the graph (unknown
    input), 1 that its graph fails, 1 ModelStreamInfer request on words giving 3 words and
    the end: the counts and labels OVMS gives for MediaPipe graphs."""
    async with graph_server(tmp_path, metrics_enable=True) as server:
        async with httpx.AsyncClient(base_url=server.rest_url, timeout=30) as http:
            for _ in range(2):
                assert (await http.post("/v2/models/echo/infer", json=TEXT)).status_code == 200
            bad = {"inputs": [{**TEXT["inputs"][0], "name": "nope"}]}
            assert (await http.post("/v2/models/echo/infer", json=bad)).status_code == 400
            assert (await http.post("/v2/models/fail/infer", json=TEXT)).status_code == 500
            assert (await http.get("/v2/models/echo/ready")).status_code == 200
            assert (await http.get("/v2/models/echo")).status_code == 200
            assert (await http.get("/v2/models/echo/versions/9")).status_code == 404
        client = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            tensor = grpcclient.InferInput("text", [1], "BYTES")
            tensor.set_data_from_numpy(np.array([b"one two three"], dtype=np.object_))
            await client.infer("echo", [tensor])

            async def requests() -> AsyncIterator[dict[str, Any]]:
                yield {"model_name": "words", "inputs": [tensor]}
                await asyncio.sleep(1)  # the answers come before the stream is closed

            got = [r async for r in client.stream_infer(requests())]
            assert len(got) == 4 and all(e is None for _, e in got)
        finally:
            await client.close()
        text = await scrape(server)

    echo_rest, echo_grpc = kserve("echo", "REST"), kserve("echo", "gRPC")
    assert value(text, "ovms_requests_accepted", **echo_rest) == 2
    assert value(text, "ovms_requests_rejected", **echo_rest) == 1
    assert value(text, "ovms_responses", **echo_rest) == 2
    assert value(text, "ovms_graph_error", **echo_rest) == 0
    assert value(text, "ovms_requests_accepted", **echo_grpc) == 1
    assert value(text, "ovms_responses", **echo_grpc) == 1
    assert value(text, "ovms_requests_accepted", **kserve("fail", "REST")) == 1
    assert value(text, "ovms_graph_error", **kserve("fail", "REST")) == 1
    assert value(text, "ovms_responses", **kserve("fail", "REST")) == 0
    words = kserve("words", "gRPC", "ModelInferStream")
    assert value(text, "ovms_requests_accepted", **words) == 1
    assert value(text, "ovms_responses", **words) == 4
    assert value(text, "ovms_graph_processing_time_us_count", name="words",
                 method="ModelInferStream") == 1
    # successful unary runs timed per graph and method, in microseconds with OVMS's buckets
    assert value(text, "ovms_graph_processing_time_us_count", name="echo",
                 method="ModelInfer") == 3
    assert value(text, "ovms_graph_processing_time_us_bucket", name="echo",
                 method="ModelInfer", le="10.0") <= 3
    assert value(text, "ovms_current_graphs", name="echo") == 0
    # every label set OVMS creates for a graph is there, at 0 when unused
    assert {"name": "endless", **dict(zip(("api", "interface", "method"), ("V3", "REST",
            "Stream"), strict=True))} in label_sets(text, "ovms_requests_accepted")
    assert "ovms_request_time_us_count" not in names(text)  # none for graphs, as in OVMS
    assert "ovms_infer_req_queue_size" not in names(text)  # not a default family
    # status calls: ModelReady and ModelMetadata, success and failure (an unknown version)
    ready = {**echo_rest, "method": "ModelReady"}
    metadata = {**echo_rest, "method": "ModelMetadata"}
    assert value(text, "ovms_requests_success", **ready) == 1
    assert value(text, "ovms_requests_success", **metadata) == 1
    assert value(text, "ovms_requests_fail", **metadata) == 1
    assert value(text, "ovms_requests_success", **{**metadata, "interface": "gRPC"}) == 0
    # ovserve's own names beside them
    assert value(text, "ovserve_requests_total", servable="echo", interface="rest") == 3


async def test_metrics_list_selects_exactly_the_families_listed(tmp_path: Path) -> None:
    async with graph_server(tmp_path, metrics_enable=True,
                            metrics_list=("ovms_requests_accepted", "ovms_graph_error")
                            ) as server:
        async with httpx.AsyncClient(base_url=server.rest_url) as http:
            await http.post("/v2/models/echo/infer", json=TEXT)
        text = await scrape(server)
    ovms = {n for n in names(text) if n.startswith("ovms_")}
    assert ovms == {"ovms_requests_accepted", "ovms_graph_error"}
    assert value(text, "ovms_requests_accepted", **kserve("echo", "REST")) == 1
    assert "ovserve_requests_total" in names(text)


async def test_the_monitoring_block_turns_ovms_metrics_on(tmp_path: Path) -> None:
    async with graph_server(tmp_path, monitoring={"metrics": {"enable": True}}) as server:
        text = await scrape(server)
    ovms = {n.removesuffix("_count").removesuffix("_bucket").removesuffix("_sum")
            for n in names(text) if n.startswith("ovms_")}
    assert ovms == {"ovms_requests_success", "ovms_requests_fail", "ovms_requests_accepted",
                    "ovms_requests_rejected", "ovms_responses", "ovms_graph_error",
                    "ovms_current_graphs", "ovms_graph_processing_time_us"}
    # a graph's status calls: no version label, as OVMS has it
    assert {"name": "echo", "api": "KServe", "interface": "REST",
            "method": "ModelReady"} in label_sets(text, "ovms_requests_success")
    # OVMS's exposition: counters without _total, whole-number buckets
    assert '# TYPE ovms_requests_accepted counter\novms_requests_accepted{' in text
    assert ('ovms_graph_processing_time_us_bucket{method="ModelInfer",name="echo",le="10"} 0'
            in text)


async def test_ovms_metric_settings_that_ovms_refuses_stop_the_server(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="configured twice"):
        async with graph_server(tmp_path, metrics_enable=True,
                                monitoring={"metrics": {"enable": True}}):
            pass


def test_ovms_rules_for_which_families_are_on(tmp_path: Path) -> None:
    of = OvmsMetricsConfig.of
    assert of(False).families == frozenset()
    assert of(True).families == frozenset(DEFAULTS)
    assert not set(ADDITIONAL) & of(True).families  # on only when listed
    assert of(True, ["ovms_infer_req_active"]).families == {"ovms_infer_req_active"}
    assert of(False, ["ovms_streams"]).families == frozenset()  # a list alone turns nothing on
    with pytest.raises(MetricsConfigError, match="ovms_nope"):
        of(True, ["ovms_nope"])
    resolve = OvmsMetricsConfig.resolve
    with pytest.raises(MetricsConfigError, match="needs --metrics_enable"):
        resolve(False, ["ovms_streams"], None, 8000)
    with pytest.raises(MetricsConfigError, match="--rest_port"):
        resolve(True, [], None, None)
    assert resolve(False, [], None, None).families == frozenset()
    config = tmp_path / "config.json"
    for block, error in ((True, "monitoring"), ({"metrics": {}}, "enable"),
                         ({"metrics": {"enable": True, "endpoint": "/m"}}, "unknown key"),
                         ({"metrics": {"enable": True, "metrics_list": "x"}}, "list")):
        config.write_text(json.dumps({"mediapipe_config_list": [], "monitoring": block}))
        with pytest.raises(MetricsConfigError, match=error):
            resolve(False, [], config, 8000)
    config.write_text(json.dumps({"monitoring": {"metrics": {
        "enable": True, "metrics_list": ["ovms_requests_success", "ovms_infer_req_queue_size"]}}}))
    assert resolve(False, [], config, 8000).families == {"ovms_requests_success",
                                                         "ovms_infer_req_queue_size"}
