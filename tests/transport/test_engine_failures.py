"""What every front end's clients see when the engine fails, on ``make serve``'s graphs with a
fake engine (fast; the real engine's fault injection is in test_engine_crash.py)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.transport.fake_server import LLM, FakeServer, fake_server

CHAT = {"model": LLM, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
        "ignore_eos": True}
PROMPT = {"inputs": [{"name": "pre_prompt", "shape": [1], "datatype": "BYTES",
                      "data": ["hi"]}]}


def prompts(text: str = "hi") -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("pre_prompt", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode()], dtype=np.object_))
    return tensor


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the /metrics samples of ``name`` with these labels."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{name}{{(.*)}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def grpc_stream(server: FakeServer) -> list[tuple[Any, Any]]:
    """One ModelStreamInfer request to python_model; responses until end_signal or an error."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    done = asyncio.Event()

    async def requests() -> AsyncIterator[dict[str, Any]]:
        yield {"model_name": "python_model", "inputs": [prompts()]}
        await done.wait()  # the client keeps the stream open, as the seed client does

    got: list[tuple[Any, Any]] = []
    try:
        async for result, error in client.stream_infer(requests()):
            got.append((result, error))
            if error is not None or result.as_numpy("end_signal") is not None:
                break
    finally:
        done.set()
        await client.close()
    return got


SERVING, NOT_SERVING = (health_pb2.HealthCheckResponse.SERVING,
                        health_pb2.HealthCheckResponse.NOT_SERVING)


async def grpc_health(server: FakeServer, status: int, seconds: float = 1.5) -> bool:
    """Whether gRPC health of the server and of python_model reaches ``status`` in time."""
    async with grpc.aio.insecure_channel(server.grpc_url) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(int(seconds / 0.05)):
            got = [(await stub.Check(health_pb2.HealthCheckRequest(service=name))).status
                   for name in ("", "python_model")]
            if got == [status, status]:
                return True
            await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeServer]:
    async with fake_server(tmp_path, monkeypatch, step_seconds=0.01) as server:
        yield server


async def test_a_request_the_engine_fails_is_an_error_on_every_front_end(
        server: FakeServer) -> None:
    async with httpx.AsyncClient(base_url=server.rest_url, timeout=30) as http:
        server.engine.fail_next = 2  # the engine fails the next request after two tokens
        reply = await http.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 500
        assert reply.json()["error"]["type"] == "server_error"
        assert "a generation step failed" in reply.json()["error"]["message"]

        server.engine.fail_next = 2
        reply = await http.post("/v1/completions", json={
            "model": LLM, "prompt": "hi", "max_tokens": 8, "ignore_eos": True, "stream": True})
        assert reply.status_code == 200  # streaming had started: the error comes in-band
        events = reply.text.split("\n\n")
        assert events[-2:] == ["data: [DONE]", ""]
        payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
        assert "a generation step failed" in payloads[-1]["error"]["message"]
        assert [p["choices"][0]["text"] for p in payloads[:-1]] == ["w0", " w1"]
        assert all(p["choices"][0]["finish_reason"] is None for p in payloads[:-1])

        server.engine.fail_next = 2
        reply = await http.post("/v2/models/python_model/infer", json=PROMPT)
        assert reply.status_code == 500
        assert "a generation step failed" in reply.json()["error"]

        server.engine.fail_next = 2
        client = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            with pytest.raises(InferenceServerException) as info:
                await client.infer("python_model", [prompts()])
        finally:
            await client.close()
        assert info.value.status() == "StatusCode.INTERNAL"
        assert "a generation step failed" in (info.value.message() or "")

        server.engine.fail_next = 2
        got = await grpc_stream(server)
        assert [r.as_numpy("completion")[0] for r, e in got[:-1]] == [b"w0", b" w1"]
        result, error = got[-1]
        assert result is None and "a generation step failed" in str(error)

        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        text = (await http.get("/metrics")).text
    assert metric(text, "ovserve_engine_requests_failed_total") == 5
    assert metric(text, "ovserve_request_errors_total", code="INTERNAL") == 5


async def test_a_crashed_engine_fails_requests_in_flight_then_recovers(
        server: FakeServer) -> None:
    engine = server.engine
    engine.restart_seconds = 2.0
    body = {**CHAT, "max_tokens": 400}
    async with httpx.AsyncClient(base_url=server.rest_url, timeout=30) as http:
        async def sse() -> str:
            async with http.stream("POST", "/v1/chat/completions",
                                   json={**body, "stream": True}) as reply:
                return "".join([line async for line in reply.aiter_lines()])

        async def grpc_unary() -> Any:
            client = grpcclient.InferenceServerClient(server.grpc_url)
            try:
                return await client.infer("python_model", [prompts()])
            except InferenceServerException as exc:
                return exc
            finally:
                await client.close()

        engine.natural_length = 400  # the seed servables do not ask for ignore_eos
        tasks = [asyncio.create_task(c) for c in (
            http.post("/v1/chat/completions", json=body), sse(), grpc_stream(server),
            http.post("/v2/models/python_model/infer", json=PROMPT), grpc_unary())]
        while engine.stats().active_requests < 5:
            await asyncio.sleep(0.01)
        tokens = engine.stats().generated_tokens  # a few steps on, every stream has started
        while engine.stats().generated_tokens < tokens + 5 * 3:
            await asyncio.sleep(0.01)
        engine.crash()  # restarts after restart_seconds
        assert (await http.get("/v2/health/ready")).status_code == 503
        assert (await http.get(f"/v2/models/{LLM}/ready")).status_code == 503
        refused = await http.post("/v1/chat/completions", json=CHAT)
        unary, streamed, stream, kserve, grpc_reply = await asyncio.gather(*tasks)
        assert await grpc_health(server, NOT_SERVING)
        while (await http.get("/v2/health/ready")).status_code != 200:
            await asyncio.sleep(0.05)
        after = await http.post("/v1/chat/completions", json=CHAT)
        assert await grpc_health(server, SERVING)

    assert unary.status_code == 500 and "engine process exited" in unary.json()["error"]["message"]
    assert '"error"' in streamed and "engine process exited" in streamed
    assert streamed.endswith("data: [DONE]") and '"finish_reason":"stop"' not in streamed
    assert stream[-1][0] is None and "engine process exited" in str(stream[-1][1])
    assert kserve.status_code == 500 and "engine process exited" in kserve.json()["error"]
    assert isinstance(grpc_reply, InferenceServerException)
    assert grpc_reply.status() == "StatusCode.INTERNAL"
    assert refused.status_code == 503 and "restarting" in refused.json()["error"]["message"]
    assert after.status_code == 200 and after.json()["usage"]["completion_tokens"] == 8
    assert engine.restarts == 1


async def test_a_prompt_is_tokenized_off_the_event_loop(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17, item 2: tokenizing a long prompt must not stall the server. While one
    request's prepare() (templating, tokenizing) is held, the server answers others; what is
    checked is that order and the thread, not a time (an 8 MiB prompt took 0.36 s on the real
    engine, readiness meanwhile under 0.15 s)."""
    async with fake_server(tmp_path, monkeypatch, step_seconds=0.01) as server:
        engine = server.engine
        entered, release = threading.Event(), threading.Event()
        threads: list[threading.Thread] = []
        prepare = engine.prepare

        def held_prepare(*args: Any, **kwargs: Any) -> Any:
            threads.append(threading.current_thread())
            entered.set()
            release.wait(10)  # bounded: a prepare() on the loop thread would stall it this long
            return prepare(*args, **kwargs)

        monkeypatch.setattr(engine, "prepare", held_prepare)
        async with httpx.AsyncClient(base_url=server.rest_url, timeout=60) as http:
            chat = asyncio.create_task(http.post("/v1/chat/completions", json=CHAT))
            assert await asyncio.to_thread(entered.wait, 30)
            ready = await http.get("/v2/health/ready")  # answered while prepare() is held
            models = await http.get("/v1/models")
            release.set()
            reply = await chat
        assert ready.status_code == 200 and models.status_code == 200
        assert reply.status_code == 200, reply.text
        assert threads and threads[0] is not threading.main_thread()
