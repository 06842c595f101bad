"""Bad requests get a clear 4xx / INVALID_ARGUMENT naming what was wrong; the server keeps
serving after every one of them."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ovserve.protocol.tensor import encode_bytes
from tests.transport.server import Server, refused_infer, start_server, write_config


def text(data: list[str], **overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {"name": "text", "shape": [len(data)], "datatype": "BYTES",
                               "data": data}
    spec.update(overrides)
    return spec


REST_CASES = [
    ("unknown servable", "nope", {"inputs": [text(["a"])]}, 404, "servable 'nope' not found"),
    ("unknown input", "echo", {"inputs": [text(["a"], name="txt")]}, 400,
     "servable echo has no input 'txt' (inputs: text)"),
    ("missing input", "echo", {"inputs": []}, 400, "missing input 'text'"),
    ("wrong datatype", "echo", {"inputs": [text(["a"], datatype="STRING")]}, 400,
     "input 'text': datatype 'STRING' is not a KServe datatype"),
    ("negative dimension", "echo", {"inputs": [text(["a"], shape=[-1])]}, 400,
     "input 'text': shape [-1] has a negative dimension"),
    ("shape vs data", "echo", {"inputs": [text(["a"], shape=[2])]}, 400,
     "input 'text': 1 value(s) given but shape [2] needs 2"),
    ("numbers that do not fit", "echo",
     {"inputs": [{"name": "text", "shape": [1], "datatype": "INT8", "data": [1000]}]}, 400,
     "input 'text': data does not fit INT8"),
    ("generator called unary", "words", {"inputs": [text(["a b"])]}, 400,
     "call this servable with a stream"),
    ("node failure", "fail", {"inputs": [text(["x"])]}, 500,
     "node failNode: execute raised RuntimeError: handler failed on purpose: x"),
]


def assert_healthy(server: Server) -> None:
    assert httpx.get(f"{server.rest_url}/v2/health/ready").status_code == 200
    body = {"inputs": [text(["still here"])]}
    reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer", json=body)
    assert reply.json()["outputs"][0]["data"] == ["STILL HERE"]


@pytest.mark.parametrize(("case", "model", "body", "status", "message"), REST_CASES,
                         ids=[c[0] for c in REST_CASES])
def test_rest_bad_input(
    server: Server, case: str, model: str, body: object, status: int, message: str
) -> None:
    reply = httpx.post(f"{server.rest_url}/v2/models/{model}/infer", json=body)
    assert reply.status_code == status
    assert message in reply.json()["error"]
    assert_healthy(server)


def test_rest_malformed_json(server: Server) -> None:
    reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer", content=b'{"inputs": [')
    assert reply.status_code == 400
    assert "malformed JSON request body at line 1 column 13" in reply.json()["error"]
    assert_healthy(server)


def test_rest_binary_size_mismatch(server: Server) -> None:
    header = b'{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES",' \
             b'"parameters":{"binary_data_size":100}}]}'
    reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer",
                       content=header + encode_bytes(["abc"]),
                       headers={"Inference-Header-Content-Length": str(len(header))})
    assert reply.status_code == 400
    assert "binary_data_size 100 does not fit the 7 binary bytes" in reply.json()["error"]
    assert_healthy(server)


def test_rest_oversized_body(server: Server) -> None:
    big = {"inputs": [text(["x" * (2 * 1024 * 1024)])]}
    reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer", json=big)
    assert reply.status_code == 413
    assert "exceeds the limit of 1048576 bytes" in reply.json()["error"]
    assert_healthy(server)


def test_rest_chunked_body_over_the_limit(server: Server) -> None:
    """No Content-Length (chunked): refused as soon as the running total crosses the limit."""
    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["'
        for _ in range(20):
            yield b"x" * (64 * 1024)
        yield b'"]}]}'

    for path in ("/v2/models/echo/infer", "/v1/completions"):
        reply = httpx.post(f"{server.rest_url}{path}", content=chunks())
        assert reply.status_code == 413, path
        assert "exceeds the limit of 1048576 bytes" in str(reply.json()["error"])
    assert_healthy(server)


def test_rest_versions_and_unexpected_errors_keep_their_shape(server: Server) -> None:
    reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer",
                       json={"inputs": [text(["a"])], "parameters": "x"})
    assert reply.status_code == 400 and "'parameters' must be a JSON object" in reply.json()[
        "error"]
    reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer",
                       json={"inputs": [text(["a"])], "outputs": 5})
    assert reply.status_code == 400 and "'outputs' must be a list" in reply.json()["error"]
    assert_healthy(server)


def grpc_request(**fields: object) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=str(fields.get("model", "echo")))
    tensor = request.inputs.add(name=str(fields.get("name", "text")),
                                datatype=str(fields.get("datatype", "BYTES")))
    tensor.shape.extend(fields.get("shape", [1]))
    request.raw_input_contents.append(fields.get("raw", encode_bytes(["abc"])))
    return request


GRPC_CASES = [
    ("unknown servable", {"model": "nope"}, grpc.StatusCode.NOT_FOUND, "servable 'nope' not found"),
    ("unknown input", {"name": "txt"}, grpc.StatusCode.INVALID_ARGUMENT, "has no input 'txt'"),
    ("negative dimension", {"shape": [-2]}, grpc.StatusCode.INVALID_ARGUMENT,
     "shape [-2] has a negative dimension"),
    ("raw size mismatch", {"datatype": "FP32", "shape": [2], "raw": b"\0" * 7},
     grpc.StatusCode.INVALID_ARGUMENT, "raw content has 7 bytes but shape [2] of FP32 needs 8"),
    ("bytes count mismatch", {"shape": [2]}, grpc.StatusCode.INVALID_ARGUMENT,
     "BYTES content has 1 length-prefixed element(s) but shape [2] needs 2"),
    ("bytes that fit no reading", {"shape": [3], "raw": b"\x09\0\0\0abc"},
     grpc.StatusCode.INVALID_ARGUMENT, "BYTES content is neither length-prefixed elements"),
    ("generator called unary", {"model": "words"}, grpc.StatusCode.INVALID_ARGUMENT,
     "call this servable with a stream"),
    ("oversized message", {"raw": encode_bytes(["x" * (2 * 1024 * 1024)])},
     grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
]


@pytest.mark.parametrize(("case", "fields", "code", "message"), GRPC_CASES,
                         ids=[c[0] for c in GRPC_CASES])
def test_grpc_bad_input(
    server: Server, case: str, fields: dict[str, object], code: grpc.StatusCode, message: str
) -> None:
    error = refused_infer(server.grpc_url, grpc_request(**fields), timeout=30)
    assert error.code() == code
    assert message in (error.details() or "")
    assert_healthy(server)


def test_grpc_raw_and_typed_contents_together_are_refused(server: Server) -> None:
    request = grpc_request()
    request.inputs[0].contents.bytes_contents.append(b"abc")
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "typed contents beside raw_input_contents" in (info.value.details() or "")
    assert_healthy(server)


def test_rest_surrogates_and_deep_nesting_are_400s(server: Server) -> None:
    lone = b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["\\ud800"]}]}'
    reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer", content=lone)
    assert reply.status_code == 400 and "not valid Unicode" in reply.json()["error"]
    deep = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer", content=deep)
    assert reply.status_code == 400 and "nested too deeply" in reply.json()["error"]
    for body in (b'{"model": "m", "prompt": "\\ud800"}', b"[" * 100_000 + b"]" * 100_000):
        reply = httpx.post(f"{server.rest_url}/v1/completions", content=body,
                           headers={"Content-Type": "application/json"})
        assert reply.status_code in (400, 404), reply.text  # no LLM here: 404 once it parses
        assert "Traceback" not in reply.text
    assert_healthy(server)


def test_rest_too_many_or_too_large_headers_are_431(server: Server) -> None:
    many = {f"x-h{i}": "v" for i in range(300)}
    assert httpx.get(f"{server.rest_url}/v2/health/ready", headers=many).status_code == 431
    large = {"x-big": "v" * (200 * 1024)}
    reply = httpx.get(f"{server.rest_url}/v2/health/ready", headers=large)
    assert reply.status_code == 431 and "at most 100 headers" in reply.json()["error"]
    assert_healthy(server)


def test_rest_timestamp_must_be_an_integer(server: Server) -> None:
    for value in ("soon", -1, 1.5, True):
        reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer", json={
            "inputs": [text(["a"])], "parameters": {"OVMS_MP_TIMESTAMP": value}})
        assert reply.status_code == 400, value
        assert "OVMS_MP_TIMESTAMP must be a non-negative integer" in reply.json()["error"]
    assert_healthy(server)


def test_grpc_garbage_message_is_invalid_argument(server: Server) -> None:
    with grpc.insecure_channel(server.grpc_url) as channel:
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                  request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff\xff garbage", timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not parse as protobuf" in (info.value.details() or "")
    assert "Traceback" not in (info.value.details() or "")
    assert_healthy(server)


def test_slow_or_silent_request_heads_are_closed(tmp_path: Path) -> None:
    """A connection that does not finish its request line and headers within --header_timeout
    is closed (slowloris); complete requests on other connections are served meanwhile."""
    server = start_server(write_config(tmp_path), "--header_timeout", "1")
    try:
        port = int(server.rest_url.rsplit(":", 1)[1])
        held = []
        for i in range(20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2:  # half trickle a partial head, half send nothing
                sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
            held.append(sock)
        assert httpx.get(f"{server.rest_url}/v2/health/ready").status_code == 200
        deadline = time.monotonic() + 10
        for sock in held:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            assert sock.recv(1024) == b""  # closed by the server
            sock.close()
        assert_healthy(server)
    finally:
        assert server.terminate() == 0


def _short_body(port: int, path: str) -> bytes:
    """POST a body shorter than its Content-Length; the whole answer (the server
    must close the connection after it: the socket's 30 s timeout fails the test if not)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
                     b'{"model": "x", "prompt": "y"}')
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_a_body_shorter_than_its_length_is_answered_408(tmp_path: Path) -> None:
    """A body that stops arriving (shorter than its Content-Length) gets 408 in the path's
    error shape after --body_timeout, and the connection is closed; a client that leaves in
    the middle of its body leaves no traceback in the log."""
    server = start_server(write_config(tmp_path), "--body_timeout", "1")
    try:
        port = int(server.rest_url.rsplit(":", 1)[1])
        for path in ("/v2/models/echo/infer", "/v1/completions"):
            data = _short_body(port, path)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), data
            assert b"connection: close" in head.lower()
            assert b"the request body stopped arriving: 29 bytes of 40 came" in body
            if path.startswith("/v1"):
                assert b'"type":"invalid_request_error"' in body  # OpenAI's envelope
        for path in ("/v2/models/echo/infer", "/v1/completions"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 100\r\n\r\n{\"inputs\"")
                time.sleep(0.3)  # then the client goes away mid-body
        assert_healthy(server)
    finally:
        assert server.terminate() == 0
    assert "Traceback" not in server.log and " ERROR " not in server.log, server.log[-3000:]
