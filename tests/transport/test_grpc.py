"""KServe v2 gRPC driven by tritonclient.grpc against a real ovserve process."""

from __future__ import annotations

import queue
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.transport.server import Server


def text_input(name: str, texts: list[str]) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    return tensor


@pytest.fixture
def client(server: Server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(
        server.grpc_url, channel_args=[("grpc.http2.max_pings_without_data", 0)])


def test_server_and_model_endpoints(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("echo")
    assert client.get_server_metadata().name == "ovserve"
    meta = client.get_model_metadata("echo")
    assert [i.name for i in meta.inputs] == ["text"]
    assert [o.name for o in meta.outputs] == ["upper", "count"]
    with pytest.raises(InferenceServerException, match="servable 'nope' not found"):
        client.get_model_metadata("nope")


def test_unary_infer(client: grpcclient.InferenceServerClient) -> None:
    result = client.infer("echo", [text_input("text", ["hello", "wörld"])], client_timeout=60)
    assert result.as_numpy("upper").tolist() == [b"HELLO", "WÖRLD".encode()]
    assert result.as_numpy("count").tolist() == [2]


def test_health_service(server: Server) -> None:
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "echo"):
            status = stub.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING


def collect(
    client: grpcclient.InferenceServerClient, requests: list[tuple[str, list[str]]]
) -> list[tuple[Any, Any]]:
    """Send each request on one stream; gather responses until each ends or errors."""
    responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    got: list[tuple[Any, Any]] = []
    try:
        for index, (model, texts) in enumerate(requests):
            client.async_stream_infer(model_name=model, inputs=[text_input("text", texts)],
                                      request_id=f"r{index}")
            while True:
                result, error = responses.get(timeout=60)
                got.append((result, error))
                if error is not None or result.as_numpy("end_signal") is not None:
                    break
    finally:
        client.stop_stream()
    return got


def test_stream_yields_one_response_per_packet_in_order(
    client: grpcclient.InferenceServerClient,
) -> None:
    got = collect(client, [("words", ["the quick fox"])])
    assert all(error is None for _, error in got)
    words = [r.as_numpy("word") for r, _ in got[:-1]]
    assert [w.tolist() for w in words] == [[b"the"], [b"quick"], [b"fox"]]
    end = got[-1][0].as_numpy("end_signal")
    assert end.dtype == np.uint8 and end.shape == (0,)
    stamps = [r.get_response().parameters["OVMS_MP_TIMESTAMP"].int64_param for r, _ in got]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_several_requests_and_in_band_errors_on_one_stream(
    client: grpcclient.InferenceServerClient,
) -> None:
    got = collect(client, [("words", ["a b"]), ("words", ["c"]), ("echo", ["x"])])
    words = [r.as_numpy("word") for r, e in got if e is None and r.as_numpy("word") is not None]
    assert [w.tolist() for w in words] == [[b"a"], [b"b"], [b"c"]]
    error = got[-1][1]
    assert error is not None and "this stream serves words" in str(error)
    ids = [r.get_response().id for r, e in got if e is None]
    assert ids == ["r0", "r0", "r0", "r1", "r1"]  # each response names its own request


def test_unknown_versions_are_not_found(client: grpcclient.InferenceServerClient) -> None:
    assert client.get_model_metadata("echo", model_version="1").versions == ["1"]
    with pytest.raises(InferenceServerException, match="has no version '7'"):
        client.get_model_metadata("echo", model_version="7")
    with pytest.raises(InferenceServerException, match="has no version 'abc'"):
        client.is_model_ready("echo", model_version="abc")
    with pytest.raises(InferenceServerException, match="has no version '2'"):
        client.infer("echo", [text_input("text", ["x"])], model_version="2")


def test_node_error_in_stream_is_reported_and_server_keeps_serving(
    client: grpcclient.InferenceServerClient,
) -> None:
    got = collect(client, [("fail", ["boom"])])
    assert "handler failed on purpose: boom" in str(got[-1][1])
    assert client.infer("echo", [text_input("text", ["ok"])]).as_numpy("upper").tolist() == [
        b"OK"]


def test_requests_sent_at_once_on_one_stream_are_served_in_turn(
    client: grpcclient.InferenceServerClient,
) -> None:
    """Triton's decoupled-model semantics: five requests written without waiting are all
    served, one after the other (a generator streams one request at a time), every response
    labelled with its own request's id."""
    responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    try:
        for index in range(5):
            client.async_stream_infer(model_name="words", request_id=f"r{index}",
                                      inputs=[text_input("text", [f"a{index} b{index}"])])
        got: list[Any] = []
        while len(got) < 15:  # two words and an end signal each
            result, error = responses.get(timeout=60)
            assert error is None, error
            got.append(result)
    finally:
        client.stop_stream()
    for index in range(5):
        mine = got[3 * index:3 * index + 3]
        assert {r.get_response().id for r in mine} == {f"r{index}"}
        assert [r.as_numpy("word").tolist() for r in mine[:2]] == [
            [f"a{index}".encode()], [f"b{index}".encode()]]
        assert mine[2].as_numpy("end_signal") is not None
