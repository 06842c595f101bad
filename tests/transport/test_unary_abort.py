"""Unary KServe requests abort their generation when the client goes, as OpenAI requests do:
a REST client that disconnects, a gRPC deadline that passes. The seed's handler runs in a
thread that cannot be cancelled; its engine requests are aborted, so it returns at once."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ovserve.protocol.tensor import encode_bytes
from tests.conftest import REPO
from tests.transport.server import Server, start_server

MODEL = "smollm2-135m-instruct"
NAMES = ("requests_total", "requests_aborted_total", "generated_tokens_total")


@pytest.fixture(scope="module")
def server(default_model_dir: Path) -> Iterator[Server]:
    # 8000 forced tokens (about the model's context): more than any CPU generates for one
    # request in the 5 s of the gRPC deadline below
    server = start_server(REPO / "servables/config.json",
                          env={"OVSERVE_IGNORE_EOS": "1", "OVSERVE_MAX_TOKENS": "8000"})
    yield server
    assert server.terminate() == 0


def engine_metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.rest_url}/metrics").text
    match = re.search(rf'^{name}{{model="{MODEL}"}} (\S+)$', text, re.M)
    assert match, name
    return float(match.group(1))


def wait_for(server: Server, condition: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(condition)


def test_rest_client_that_leaves_aborts_the_generation(server: Server) -> None:
    aborted = engine_metric(server, "ovserve_engine_requests_aborted_total")
    body = json.dumps({"inputs": [{"name": "pre_prompt", "shape": [1], "datatype": "BYTES",
                                   "data": ["Write a long story."]}]}).encode()
    with socket.create_connection(("127.0.0.1", server.rest_port)) as sock:
        sock.sendall(b"POST /v2/models/python_model/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        wait_for(server, "the request never reached the engine",
                 lambda: engine_metric(server, "ovserve_engine_requests_active") > 0)
    wait_for(server, "the engine did not abort the request of the client that left",
             lambda: engine_metric(server, "ovserve_engine_requests_aborted_total") > aborted
             and engine_metric(server, "ovserve_engine_requests_active") == 0)


def test_grpc_deadline_aborts_the_generation(server: Server) -> None:
    """The deadline (5 s: the request reaches the engine first, even on a loaded machine)
    passes long before the forced length is generated: the engine aborts the request. Had
    the request not reached the engine by then, it is never run or is aborted on arrival:
    whatever the call submitted, the engine aborted, and nothing ran to its end."""
    before = {name: engine_metric(server, f"ovserve_engine_{name}") for name in NAMES}
    request = service_pb2.ModelInferRequest(model_name="python_model")
    tensor = request.inputs.add(name="pre_prompt", datatype="BYTES")
    tensor.shape.append(1)
    request.raw_input_contents.append(encode_bytes(["Write a long story."]))
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    def moved() -> dict[str, float]:
        return {name: engine_metric(server, f"ovserve_engine_{name}") - before[name]
                for name in NAMES}

    wait_for(server, "the engine did not abort the request whose deadline passed",
             lambda: engine_metric(server, "ovserve_engine_requests_active") == 0
             and (now := moved())["requests_aborted_total"] == now["requests_total"])
    assert moved()["requests_total"] <= 1 and moved()["generated_tokens_total"] < 8000
