"""A cold server's first traffic: 4 SSE streams and 4 gRPC streams at once, on fresh servers.

The first tokenizer call -> numpy conversion in several threads at once could deadlock (a C++
static-initialisation guard against the GIL) and freeze the whole process; the engine warms
its tokenizer up at load and serialises tokenization, so every stream must finish.
"""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.conftest import REPO
from tests.transport.server import Server, start_server

TOKENS = 12


def sse(server: Server, i: int) -> str:
    body = {"model": "smollm2-135m-instruct", "max_tokens": TOKENS, "ignore_eos": True,
            "stream": True, "messages": [{"role": "user", "content": f"Fact {i} about cats."}]}
    with httpx.stream("POST", f"{server.rest_url}/v1/chat/completions", json=body,
                      timeout=60) as reply:
        return reply.read().decode()


def grpc_stream(server: Server, i: int) -> list[Any]:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    events: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: events.put((result, error)))
    prompt = grpcclient.InferInput("pre_prompt", [1], "BYTES")
    prompt.set_data_from_numpy(np.array([f"Fact {i} about dogs.".encode()], dtype=np.object_))
    client.async_stream_infer(model_name="python_model", inputs=[prompt])
    got: list[Any] = []
    try:
        while True:
            result, error = events.get(timeout=60)  # a frozen server fails here
            assert error is None, error
            got.append(result)
            if result.as_numpy("end_signal") is not None:
                return got
    finally:
        client.stop_stream()
        client.close()


@pytest.mark.parametrize("start", [1, 2])
def test_first_traffic_on_a_cold_server_completes(default_model_dir: object, start: int) -> None:
    server = start_server(REPO / "servables/config.json",
                          env={"OVSERVE_IGNORE_EOS": "1", "OVSERVE_MAX_TOKENS": str(TOKENS)})
    try:
        with ThreadPoolExecutor(8) as pool:
            sse_streams = [pool.submit(sse, server, i) for i in range(4)]
            grpc_streams = [pool.submit(grpc_stream, server, i) for i in range(4)]
            texts = [future.result(timeout=120) for future in sse_streams]
            results = [future.result(timeout=120) for future in grpc_streams]
        for text in texts:
            assert text.endswith("data: [DONE]\n\n")
            assert text.count('"finish_reason":"length"') == 1
        for got in results:
            assert got[-2].as_numpy("token_count")[0] == TOKENS
    finally:
        assert server.terminate(timeout=30) == 0
