"""Exemplars on a real server on loopback (fake engine, OVMS's names on): a scraper asking for
OpenMetrics gets an exposition prometheus-client's strict OpenMetrics parser accepts, whose
latency histograms carry the client's X-Request-Id (openai SDK over REST, tritonclient over
gRPC) as the ``request_id`` exemplar of the bucket its time fell in; Prometheus' text format
carries none."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc.aio as grpcclient

from tests.transport.fake_server import LLM, fake_server
from tests.transport.metrics_text import OPENMETRICS, count, exemplars


def of_request(text: str, family: str, request_id: str) -> list[dict[str, str]]:
    """The series of ``family`` whose bucket exemplar is ``request_id``'s, each checked to lie
    in its bucket."""
    series = []
    for labels, le, exemplar, below in exemplars(text, family):
        if exemplar.labels.get("request_id") == request_id:
            assert below < exemplar.value <= le or exemplar.value == le == 0, (family, le)
            assert exemplar.timestamp is not None
            series.append(labels)
    return series


async def test_openmetrics_scrape_has_the_clients_request_ids_as_exemplars(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"metrics_enable": True, "metrics_list": ["ovms_requests_success",
                                                         "ovms_graph_processing_time_us"]}
    async with fake_server(tmp_path, monkeypatch, settings) as server, \
            openai.AsyncOpenAI(base_url=server.rest_url + "/v1", api_key="none") as ai, \
            httpx.AsyncClient(base_url=server.rest_url) as http:
        stream = await ai.chat.completions.create(
            model=LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=5,
            stream=True, extra_body={"ignore_eos": True},
            extra_headers={"X-Request-Id": "chat-exemplar-1"})
        assert len([c async for c in stream if c.choices and c.choices[0].delta.content]) == 5
        scraped = await http.get("/metrics", headers={"Accept": OPENMETRICS})
        triton = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            prompt = grpcclient.InferInput("pre_prompt", [1], "BYTES")
            prompt.set_data_from_numpy(np.array([b"a b c"], dtype=np.object_))
            await triton.infer("python_model", [prompt],
                               headers={"x-request-id": "grpc-exemplar-2"})
        finally:
            await triton.close()
        after_grpc = (await http.get("/metrics", headers={"Accept": OPENMETRICS})).text
        plain = await http.get("/metrics")
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    text = scraped.text
    assert text.endswith("# EOF\n")
    # the engine's histograms (vLLM's names) and the transport's (ovserve's)
    for family in ("vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds",
                   "vllm:request_prefill_time_seconds"):
        assert of_request(text, family, "chat-exemplar-1") == [
            {"model_name": LLM, "engine": "0"}], family
    for family in ("ovserve_request_duration_seconds", "ovserve_time_to_first_output_seconds"):
        assert of_request(text, family, "chat-exemplar-1") == [
            {"servable": LLM, "interface": "openai"}], family
    # a Python handler's engine request (made in a handler thread) carries its caller's id
    assert of_request(after_grpc, "ovserve_request_duration_seconds", "grpc-exemplar-2") == [
        {"servable": "python_model", "interface": "grpc"}]
    assert of_request(after_grpc, "vllm:e2e_request_latency_seconds", "grpc-exemplar-2") == [
        {"model_name": LLM, "engine": "0"}]
    # names as the text format has them (vLLM's colons kept), OVMS's families included
    assert "vllm:num_requests_running" in text and "ovms_requests_success{" in after_grpc
    assert "ovms_graph_processing_time_us_bucket{" in after_grpc
    # Prometheus' text format: the same samples without exemplars
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "exemplar-" not in plain.text and " # {" not in plain.text
    assert "vllm:e2e_request_latency_seconds_bucket{" in plain.text


async def test_a_long_request_id_is_left_out_rather_than_cut(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fits, too_long = "f" * 118, "t" * 119  # "request_id" + id: at most 128 characters
    async with fake_server(tmp_path, monkeypatch) as server, \
            httpx.AsyncClient(base_url=server.rest_url, timeout=30) as http:
        texts = []
        for request_id in (too_long, fits):
            reply = await http.post("/v1/completions", headers={"X-Request-Id": request_id},
                                    json={"model": LLM, "prompt": "a", "max_tokens": 2})
            assert reply.status_code == 200 and reply.json()["id"] == f"cmpl-{request_id}"
            texts.append((await http.get("/metrics", headers={"Accept": OPENMETRICS})).text)
    counted, _ = texts
    assert count(counted, "vllm:e2e_request_latency_seconds") == 1 and too_long not in counted
    assert exemplars(counted, "vllm:e2e_request_latency_seconds") == []
    assert of_request(texts[1], "vllm:e2e_request_latency_seconds", fits)
