"""Fault injection on the real engine behind a real server (``make serve``'s config): the
engine process is killed with requests in flight on every front end; each client gets an
error, readiness goes false then true, and the next requests succeed without a server restart.

Lengths are forced (``ignore_eos``; the seed servables with ``OVSERVE_IGNORE_EOS=1``), so the
requests are still generating when the engine dies, whatever the model would say.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.conftest import REPO
from tests.transport.server import Server, start_server

MODEL = "smollm2-135m-instruct"
LONG = 1000  # tokens: far more than the test waits for


@pytest.fixture(scope="module")
def server(default_model_dir: object) -> Iterator[Server]:
    server = start_server(REPO / "servables/config.json",
                          env={"OVSERVE_IGNORE_EOS": "1", "OVSERVE_MAX_TOKENS": str(LONG)})
    yield server
    assert server.terminate() == 0


def engine_pid(server: Server) -> int:
    (child,) = [p for p in psutil.Process(server.process.pid).children()
                if "ovserve.engine" in p.cmdline()]
    return child.pid


def engine_metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.rest_url}/metrics").text
    match = re.search(rf'^{name}{{model="{MODEL}"}} (\S+)$', text, re.M)
    assert match, name
    return float(match.group(1))


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def prompts_input(text: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("pre_prompt", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode()], dtype=np.object_))
    return tensor


def grpc_stream(server: Server, stop_after: int | None = None) -> list[Any]:
    """ModelStreamInfer on python_model: results (and a last error) until end_signal, an
    error or ``stop_after`` responses."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    events: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: events.put((result, error)))
    client.async_stream_infer(model_name="python_model", inputs=[prompts_input("Tell a story.")])
    got: list[Any] = []
    try:
        while True:
            result, error = events.get(timeout=120)
            got.append(error if error is not None else result)
            if (error is not None or result.as_numpy("end_signal") is not None
                    or len(got) == stop_after):
                return got
    finally:
        client.stop_stream(cancel_requests=True)
        client.close()


def grpc_unary(server: Server) -> Any:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        return client.infer("python_model", [prompts_input("Tell a story.")],
                            client_timeout=120)
    except InferenceServerException as exc:
        return exc
    finally:
        client.close()


def openai_streamed(server: Server, max_tokens: int = LONG) -> str:
    body = {"model": MODEL, "prompt": "Tell a story.", "max_tokens": max_tokens,
            "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{server.rest_url}/v1/completions", json=body,
                      timeout=120) as reply:
        assert reply.status_code == 200
        return reply.read().decode()


def openai_unary(server: Server, max_tokens: int = LONG) -> httpx.Response:
    return httpx.post(f"{server.rest_url}/v1/chat/completions", timeout=120, json={
        "model": MODEL, "messages": [{"role": "user", "content": "Tell a story."}],
        "max_tokens": max_tokens, "ignore_eos": True})


def kserve_rest(server: Server) -> httpx.Response:
    return httpx.post(f"{server.rest_url}/v2/models/python_model/infer", timeout=120, json={
        "inputs": [{"name": "pre_prompt", "shape": [1], "datatype": "BYTES",
                    "data": ["Tell a story."]}]})


def test_disconnect_mid_stream_frees_the_engine_slot(server: Server) -> None:
    aborted = engine_metric(server, "ovserve_engine_requests_aborted_total")
    got = grpc_stream(server, stop_after=2)
    assert len(got) == 2 and got[-1].as_numpy("completion") is not None
    wait_for(lambda: engine_metric(server, "ovserve_engine_requests_active") == 0
             and engine_metric(server, "ovserve_engine_requests_aborted_total") == aborted + 1,
             "the engine did not abort the request of the client that left", 20)


def test_killed_engine_fails_every_front_end_then_recovers(server: Server) -> None:
    old_pid = engine_pid(server)
    with ThreadPoolExecutor(5) as pool:
        futures = {name: pool.submit(call, server) for name, call in (
            ("openai_streamed", openai_streamed), ("openai_unary", openai_unary),
            ("grpc_stream", grpc_stream), ("grpc_unary", grpc_unary),
            ("kserve_rest", kserve_rest))}
        wait_for(lambda: engine_metric(server, "ovserve_engine_requests_active") == 5,
                 "the five requests did not all reach the engine", 60)
        # a few steps later every request has sent output: the streams have started
        tokens = engine_metric(server, "ovserve_engine_generated_tokens_total")
        wait_for(lambda: engine_metric(server, "ovserve_engine_generated_tokens_total")
                 >= tokens + 5 * 8, "the engine did not generate", 60)
        os.kill(old_pid, signal.SIGKILL)
        wait_for(lambda: httpx.get(f"{server.rest_url}/v2/health/ready").status_code == 503,
                 "readiness stayed true with the engine dead", 10)
        assert httpx.get(f"{server.rest_url}/v2/models/{MODEL}/ready").status_code == 503
        got = {name: future.result(timeout=120) for name, future in futures.items()}

    streamed = got["openai_streamed"]
    events = streamed.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    error = json.loads(events[-3].removeprefix("data: "))["error"]
    assert error["type"] == "server_error" and "engine process exited" in error["message"]
    assert '"finish_reason":"stop"' not in streamed
    unary = got["openai_unary"]
    assert unary.status_code == 500
    assert "engine process exited" in unary.json()["error"]["message"]
    stream_error = got["grpc_stream"][-1]
    assert isinstance(stream_error, InferenceServerException)
    assert "engine process exited" in str(stream_error)
    assert all(r.as_numpy("end_signal") is None for r in got["grpc_stream"][:-1])
    assert isinstance(got["grpc_unary"], InferenceServerException)
    assert got["grpc_unary"].status() == "StatusCode.INTERNAL"
    assert got["kserve_rest"].status_code == 500
    assert "engine process exited" in got["kserve_rest"].json()["error"]

    wait_for(lambda: httpx.get(f"{server.rest_url}/v2/health/ready").status_code == 200,
             "the engine was not restarted")
    assert grpcclient.InferenceServerClient(server.grpc_url).is_server_ready()
    assert engine_pid(server) != old_pid
    assert engine_metric(server, "ovserve_engine_restarts_total") == 1
    assert engine_metric(server, "ovserve_engine_requests_failed_total") >= 5
    # the same server answers again, on every front end
    reply = openai_unary(server, max_tokens=8)
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 8
    assert openai_streamed(server, max_tokens=4).endswith("data: [DONE]\n\n")
    with ThreadPoolExecutor(1) as pool:  # the seed servables generate LONG tokens here
        stream = pool.submit(grpc_stream, server, 3)
        assert all(r.as_numpy("completion") is not None for r in stream.result(timeout=120))
