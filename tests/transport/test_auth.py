"""The optional API key (--api_key / OVSERVE_API_KEY): every HTTP request and gRPC call but
health, readiness and metrics needs "Authorization: Bearer <key>"; the real clients pass it."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from ovserve.cli import build_parser
from tests.transport.server import Server, start_server, write_config

KEY = "s3cret-key-for-tests"
GOOD = {"authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(write_config(tmp_path_factory.mktemp("graphs")), "--api_key", KEY)
    yield server
    assert server.terminate() == 0
    assert KEY not in server.log  # the key is never logged


def echo_input(module: Any) -> Any:
    tensor = module.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"hi"], dtype=np.object_))
    return tensor


def test_probes_and_metrics_need_no_key(locked: Server) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/echo/ready",
                 "/v2/models/echo/versions/1/ready", "/health", "/v1/health/ready", "/metrics",
                 "/ui/"):
        assert httpx.get(locked.rest_url + path).status_code == 200, path
    with grpc.insecure_channel(locked.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"},
                                     {"authorization": KEY}])
def test_rest_without_the_key_is_401_in_each_shape(locked: Server,
                                                   headers: dict[str, str]) -> None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}
    reply = httpx.post(f"{locked.rest_url}/v2/models/echo/infer", json=body, headers=headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    assert "API key" in reply.json()["error"]
    reply = httpx.get(f"{locked.rest_url}/v1/models", headers=headers)
    assert reply.status_code == 401
    error = reply.json()["error"]
    assert error["code"] == "invalid_api_key" and "API key" in error["message"]
    assert KEY not in reply.text


def test_the_real_clients_pass_the_key(locked: Server) -> None:
    with openai.OpenAI(base_url=f"{locked.rest_url}/v1", api_key=KEY) as client:
        assert client.models.list().data == []  # no LLM among the test graphs
    with openai.OpenAI(base_url=f"{locked.rest_url}/v1", api_key="wrong",
                       max_retries=0) as client, pytest.raises(openai.AuthenticationError):
        client.models.list()

    rest = httpclient.InferenceServerClient(locked.rest_url.removeprefix("http://"))
    # a copy: tritonclient.http adds its own headers to the dict it is given
    result = rest.infer("echo", [echo_input(httpclient)], headers=dict(GOOD))
    assert result.as_numpy("upper").tolist() == [b"HI"]
    with pytest.raises(InferenceServerException, match="API key"):
        rest.infer("echo", [echo_input(httpclient)])

    client = grpcclient.InferenceServerClient(locked.grpc_url)
    assert client.infer("echo", [echo_input(grpcclient)],
                        headers=GOOD).as_numpy("upper").tolist() == [b"HI"]
    with pytest.raises(InferenceServerException, match="API key") as refused:
        client.infer("echo", [echo_input(grpcclient)])
    assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException, match="API key"):
        client.get_server_metadata()


@pytest.mark.parametrize("headers", [GOOD, {}])
def test_model_stream_infer_needs_the_key(locked: Server, headers: dict[str, str]) -> None:
    client = grpcclient.InferenceServerClient(locked.grpc_url)
    results: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)),
                        headers=headers)
    try:
        # refused: the stream may already be closed when the request is written
        with contextlib.suppress(InferenceServerException):
            client.async_stream_infer("words", [echo_input(grpcclient)])
        result, error = results.get(timeout=30)
    finally:
        client.stop_stream()
    if headers:
        assert error is None and result.as_numpy("word").tolist() == [b"hi"]
    else:
        assert error is not None and "API key" in str(error)


def test_api_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVSERVE_API_KEY", "from-env")
    assert build_parser().parse_args([]).api_key == "from-env"
    monkeypatch.delenv("OVSERVE_API_KEY")
    assert build_parser().parse_args([]).api_key is None
