"""Admission control (--max_concurrent_requests, --max_queued_requests) on a real server on
loopback with fake engines, through real clients: past a limit the openai SDK gets a 429 with
Retry-After in OpenAI's envelope, httpx KServe's {"error": ...}, tritonclient
RESOURCE_EXHAUSTED, all at once; readiness stays true; the requests admitted all finish and
nothing leaks (in flight back to 0); refusals are counted by reason; the SDK's retry waits what
Retry-After says and then gets in."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from tests.transport.fake_server import LLM, FakeServer, fake_server
from tests.transport.metrics_text import value


async def scrape(server: FakeServer) -> str:
    async with httpx.AsyncClient(base_url=server.rest_url) as http:
        return (await http.get("/metrics")).text


async def until(server: FakeServer, metric: str, wanted: float, seconds: float = 20,
                **labels: str) -> str:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        text = await scrape(server)
        if value(text, metric, **labels) == wanted:
            return text
        assert asyncio.get_running_loop().time() < deadline, f"{metric} never {wanted}"
        await asyncio.sleep(0.02)


def client(server: FakeServer, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.rest_url + "/v1", api_key="none", **options)


async def chat(ai: openai.AsyncOpenAI, tokens: int = 20) -> str:
    """A streamed chat, read to its end: its text."""
    stream = await ai.chat.completions.create(
        model=LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=tokens,
        stream=True, extra_body={"ignore_eos": True})
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return text


def prompt_tensor() -> grpcclient.InferInput:
    data = np.array([b"a b c"], dtype=np.object_)
    tensor = grpcclient.InferInput("pre_prompt", [1], "BYTES")
    tensor.set_data_from_numpy(data)
    return tensor


async def test_past_max_concurrent_requests_every_api_is_refused_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"max_concurrent_requests": 2}
    async with fake_server(tmp_path, monkeypatch, settings) as server:
        server.engine.pause()
        async with client(server, max_retries=0) as ai:
            await refused_everywhere(server, ai)


async def refused_everywhere(server: FakeServer, ai: openai.AsyncOpenAI) -> None:
    held = [asyncio.create_task(chat(ai)) for _ in range(2)]
    await until(server, "ovserve_requests_in_flight", 2)
    async with httpx.AsyncClient(base_url=server.rest_url, timeout=30) as http:
        # OpenAI's envelope and Retry-After, through the SDK
        with pytest.raises(openai.RateLimitError) as refused:
            await ai.chat.completions.create(
                model=LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=5)
        assert refused.value.response.headers["retry-after"] == "1"
        body = refused.value.response.json()
        assert body["error"]["type"] == "rate_limit_exceeded"
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert "--max_concurrent_requests" in body["error"]["message"]
        # /v3 and embeddings-style routes are inference too
        reply = await http.post("/v3/completions", json={"model": LLM, "prompt": "x"})
        assert reply.status_code == 429 and "error" in reply.json()
        # KServe's shape on /v2
        reply = await http.post(f"/v2/models/{LLM}/infer", json={"inputs": []})
        assert reply.status_code == 429
        assert reply.headers["retry-after"] == "1"
        assert isinstance(reply.json()["error"], str)
        # the rest is never limited, and readiness stays true
        for path in ("/v2/health/ready", "/v1/models", "/health", f"/v2/models/{LLM}"):
            assert (await http.get(path)).status_code == 200, path
        triton = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            with pytest.raises(InferenceServerException) as grpc_refused:
                await triton.infer("python_model", [prompt_tensor()])
            assert grpc_refused.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
            assert await triton.is_server_ready()
        finally:
            await triton.close()
        text = await scrape(server)
        assert value(text, "ovserve_requests_in_flight") == 2
        assert value(text, "ovserve_requests_rejected_total",
                     reason="max_concurrent_requests") == 4
        assert value(text, "ovserve_requests_rejected_total", interface="openai") == 2
        assert value(text, "ovserve_requests_rejected_total", interface="rest") == 1
        assert value(text, "ovserve_requests_rejected_total", interface="grpc") == 1
        server.engine.resume()
        texts = await asyncio.gather(*held)
    assert texts == [" ".join(f"w{i}" for i in range(20))] * 2  # the admitted all finish
    text = await until(server, "ovserve_requests_in_flight", 0)
    assert value(text, "ovserve_admission_limit", limit="max_concurrent_requests") == 2
    # with the slots free, requests are admitted again
    assert await chat(ai, 3) == "w0 w1 w2"


async def test_a_grpc_stream_holds_one_slot_while_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with fake_server(tmp_path, monkeypatch, {"max_concurrent_requests": 1}) as server:
        channel = grpc.aio.insecure_channel(server.grpc_url)
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        requests: asyncio.Queue[Any] = asyncio.Queue()

        async def sent() -> Any:
            while (item := await requests.get()) is not None:
                yield item

        call = stub.ModelStreamInfer(sent())
        request = service_pb2.ModelInferRequest(model_name="python_model")
        request.inputs.add(name="pre_prompt", datatype="BYTES", shape=[1])
        request.raw_input_contents.append(struct.pack("<I", 5) + b"a b c")
        await requests.put(request)
        await call.read()  # the first response: the stream is open
        await until(server, "ovserve_requests_in_flight", 1)
        async with httpx.AsyncClient(base_url=server.rest_url, timeout=30) as http:
            reply = await http.post("/v1/completions", json={"model": LLM, "prompt": "x"})
            assert reply.status_code == 429
        call.cancel()
        await channel.close()
        await until(server, "ovserve_requests_in_flight", 0)


async def test_past_max_queued_requests_new_requests_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine running 1 request at a time: one runs, one waits for its slot; with
    --max_queued_requests 1 a third is refused (reason max_queued_requests); both admitted
    finish."""
    async with fake_server(tmp_path, monkeypatch, {"max_queued_requests": 1},
                           max_running=1) as server, client(server, max_retries=0) as ai:
        await one_waits(server, ai)


async def one_waits(server: FakeServer, ai: openai.AsyncOpenAI) -> None:
    server.engine.pause()
    first = asyncio.create_task(chat(ai, 50))
    await until(server, "ovserve_engine_requests_active", 1, model=LLM)
    server.engine.resume()
    await until(server, "vllm:num_requests_running", 1, model_name=LLM)
    server.engine.pause()
    second = asyncio.create_task(chat(ai, 50))
    await until(server, "vllm:num_requests_waiting", 1, model_name=LLM)
    with pytest.raises(openai.RateLimitError) as refused:
        await chat(ai)
    assert "--max_queued_requests" in refused.value.response.json()["error"]["message"]
    server.engine.resume()
    assert [len(t.split()) for t in await asyncio.gather(first, second)] == [50, 50]
    text = await until(server, "ovserve_requests_in_flight", 0)
    assert value(text, "ovserve_requests_rejected_total", reason="max_queued_requests") == 1
    assert value(text, "ovserve_requests_rejected_total",
                 reason="max_concurrent_requests") == 0


async def test_the_openai_sdk_retry_waits_retry_after_then_gets_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own retry (max_retries) on the 429: each wait it computes is the server's
    Retry-After (not its exponential backoff), and once the slot is free it gets in."""
    async with fake_server(tmp_path, monkeypatch, {"max_concurrent_requests": 1}) as server:
        server.engine.pause()
        async with client(server, max_retries=0) as holding, \
                client(server, max_retries=8) as retrying:
            await retried_after(server, holding, retrying)


async def retried_after(server: FakeServer, holding: openai.AsyncOpenAI,
                        retrying: openai.AsyncOpenAI) -> None:
    holder = asyncio.create_task(chat(holding))
    await until(server, "ovserve_requests_in_flight", 1)
    waits: list[float] = []
    compute = retrying._calculate_retry_timeout

    def recorded(*args: Any, **kwargs: Any) -> float:
        waits.append(compute(*args, **kwargs))
        return waits[-1]

    retrying._calculate_retry_timeout = recorded  # type: ignore[method-assign]
    retried = asyncio.create_task(chat(retrying, 3))
    await until(server, "ovserve_requests_rejected_total", 1,
                reason="max_concurrent_requests")
    server.engine.resume()
    await holder
    assert await retried == "w0 w1 w2"
    assert waits and all(w == 1.0 for w in waits)
    text = await until(server, "ovserve_requests_in_flight", 0)
    assert value(text, "ovserve_requests_rejected_total") == len(waits)


def test_the_flags_give_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from ovserve.cli import build_parser, server_settings

    monkeypatch.setenv("OVSERVE_MAX_QUEUED_REQUESTS", "7")
    parser = build_parser()
    args = parser.parse_args(["--rest_port", "8000", "--max_concurrent_requests", "64"])
    settings = server_settings(parser, args, [])
    assert (settings.max_concurrent_requests, settings.max_queued_requests) == (64, 7)
    with pytest.raises(SystemExit):
        server_settings(parser, parser.parse_args(["--rest_port", "1",
                                                   "--max_concurrent_requests", "0"]), [])


def test_the_limited_routes() -> None:
    from ovserve.transport.admission import INFERENCE_PATH

    for path in ("/v1/chat/completions", "/v3/completions", "/v1/responses", "/v1/embeddings",
                 "/v3/rerank", "/v1/score", "/rerank", "/score", "/v2/models/m/infer",
                 "/v2/models/m/versions/2/infer"):
        assert INFERENCE_PATH.fullmatch(path), path
    for path in ("/v1/models", "/tokenize", "/v2/models/m/ready", "/metrics", "/v1/rag/r/documents",
                 "/v1/config/reload", "/health"):
        assert not INFERENCE_PATH.fullmatch(path), path
