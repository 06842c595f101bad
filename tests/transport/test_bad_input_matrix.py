"""The bad-input matrix (issue 17) on `make serve`'s configuration, the real model behind it:
KServe REST, KServe gRPC and OpenAI. Every case gets its 4xx / gRPC code with a message naming
the field at fault; the server stays ready after each, and its log holds no traceback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ovserve.protocol.tensor import encode_bytes
from tests.conftest import REPO
from tests.transport.server import Server, refused_infer, start_server

LLM = "smollm2-135m-instruct"
SEED = "python_model"  # the seed's streaming servable: input pre_prompt (BYTES)


@pytest.fixture(scope="module")
def served(default_model_dir: object) -> Iterator[Server]:
    server = start_server(REPO / "servables/config.json", "--max_request_bytes",
                          str(1024 * 1024))
    yield server
    assert server.terminate() == 0
    assert "Traceback" not in server.log, server.log[-3000:]
    # every case is the client's error: none is logged as the server's
    assert " ERROR " not in server.log, server.log[-3000:]


def assert_ready(server: Server) -> None:
    assert httpx.get(f"{server.rest_url}/v2/health/ready", timeout=10).status_code == 200


# -- KServe REST: (case, body or raw bytes, status, text the error must hold) ------------------

def prompt(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "pre_prompt", "shape": [1], "datatype": "BYTES",
                            "data": ["hi"]}
    spec.update(overrides)
    return spec


REST: list[tuple[str, str, Any, int, str]] = [
    ("unknown servable", "nope", {"inputs": [prompt()]}, 404, "servable 'nope' not found"),
    ("unknown input", SEED, {"inputs": [prompt(name="txt")]}, 400, "no input 'txt'"),
    ("no inputs", SEED, {"inputs": []}, 400, "missing input 'pre_prompt'"),
    ("inputs not a list", SEED, {"inputs": 5}, 400, "inputs"),
    ("body not an object", SEED, [1, 2], 400, "JSON object"),
    ("unknown datatype", SEED, {"inputs": [prompt(datatype="STRING")]}, 400,
     "datatype 'STRING' is not a KServe datatype"),
    ("negative dimension", SEED, {"inputs": [prompt(shape=[-1])]}, 400,
     "'pre_prompt': shape [-1] has a negative dimension"),
    ("boolean dimension", SEED, {"inputs": [prompt(shape=[True])]}, 400, "shape"),
    ("shape against data", SEED, {"inputs": [prompt(shape=[3])]}, 400,
     "'pre_prompt': 1 value(s) given but shape [3] needs 3"),
    ("numbers for text", SEED, {"inputs": [prompt(datatype="FP32", data=[1.5])]}, 400,
     "input 'pre_prompt': expected BYTES (strings), got FP32"),
    ("out of range", SEED, {"inputs": [prompt(datatype="INT8", data=[1000])]}, 400,
     "'pre_prompt': data does not fit INT8"),
    ("parameters not an object", SEED, {"inputs": [prompt()], "parameters": "x"}, 400,
     "'parameters' must be a JSON object"),
    ("outputs not a list", SEED, {"inputs": [prompt()], "outputs": 5}, 400,
     "'outputs' must be a list"),
    ("unknown output", SEED, {"inputs": [prompt()], "outputs": [{"name": "nope"}]}, 400,
     "nope"),
    ("timestamp not a number", SEED,
     {"inputs": [prompt()], "parameters": {"OVMS_MP_TIMESTAMP": "soon"}}, 400,
     "OVMS_MP_TIMESTAMP must be a non-negative integer"),
    ("malformed JSON", SEED, b'{"inputs": [', 400, "malformed JSON"),
    ("nested too deeply", SEED, b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400,
     "nested too deeply"),
    ("lone surrogate", SEED,
     b'{"inputs": [{"name": "pre_prompt", "shape": [1], "datatype": "BYTES", '
     b'"data": ["\\ud800"]}]}', 400, "not valid Unicode"),
    ("over the body limit", SEED, {"inputs": [prompt(data=["x" * (2 * 1024 * 1024)])]}, 413,
     "exceeds the limit of 1048576 bytes"),
    ("prompt over the context", SEED, {"inputs": [prompt(data=["word " * 9000])]}, 400,
     "over the model's context"),
    ("a tensor for an LLM graph", LLM, {"inputs": [prompt(name="input")]}, 400,
     "input 'input' takes completion and chat requests"),
]


@pytest.mark.parametrize(("case", "model", "body", "status", "message"), REST,
                         ids=[c[0] for c in REST])
def test_kserve_rest(served: Server, case: str, model: str, body: Any, status: int,
                     message: str) -> None:
    url = f"{served.rest_url}/v2/models/{model}/infer"
    reply = (httpx.post(url, content=body, timeout=60) if isinstance(body, bytes)
             else httpx.post(url, json=body, timeout=60))
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    assert "Traceback" not in reply.text
    assert_ready(served)


def test_kserve_rest_unknown_version_is_404(served: Server) -> None:
    reply = httpx.post(f"{served.rest_url}/v2/models/{SEED}/versions/7/infer",
                       json={"inputs": [prompt()]})
    assert reply.status_code == 404 and "version" in reply.json()["error"]
    assert_ready(served)


# -- KServe gRPC: (case, request fields, code, text) ------------------------------------------

def grpc_request(model: str = SEED, name: str = "pre_prompt", datatype: str = "BYTES",
                 shape: tuple[int, ...] = (1,), raw: bytes | None = None,
                 version: str = "") -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model, model_version=version)
    tensor = request.inputs.add(name=name, datatype=datatype)
    tensor.shape.extend(shape)
    request.raw_input_contents.append(encode_bytes(["hi"]) if raw is None else raw)
    return request


INVALID = grpc.StatusCode.INVALID_ARGUMENT
GRPC: list[tuple[str, dict[str, Any], grpc.StatusCode, str]] = [
    ("unknown servable", {"model": "nope"}, grpc.StatusCode.NOT_FOUND,
     "servable 'nope' not found"),
    ("unknown version", {"version": "7"}, grpc.StatusCode.NOT_FOUND, "version"),
    ("unknown input", {"name": "txt"}, INVALID, "no input 'txt'"),
    # a custom datatype in raw contents reaches the handler (OVMS reference.md "Custom types");
    # this one reads strings
    ("custom datatype", {"datatype": "STRING"}, INVALID,
     "input 'pre_prompt': expected BYTES (strings), got STRING"),
    ("negative dimension", {"shape": (-2,)}, INVALID, "shape [-2] has a negative dimension"),
    ("raw size", {"datatype": "FP32", "shape": (2,), "raw": b"\0" * 7}, INVALID,
     "raw content has 7 bytes but shape [2] of FP32 needs 8"),
    ("BYTES count", {"shape": (2,)}, INVALID,
     "BYTES content has 1 length-prefixed element(s) but shape [2] needs 2"),
    ("BYTES that fit no reading", {"shape": (3,), "raw": b"\x09\0\0\0abc"}, INVALID,
     "is neither length-prefixed elements (BYTES element 0 declares 9 bytes but only 3 "
     "remain) nor one raw element"),
    ("numbers for text", {"datatype": "FP32", "raw": b"\0\0\x80\x3f"}, INVALID,
     "input 'pre_prompt': expected BYTES (strings), got FP32"),
    ("bytes that are not text", {"raw": encode_bytes([b"\xff\xfe"])}, INVALID,
     "input 'pre_prompt': element 0 is not UTF-8 text"),
    ("over the message limit", {"raw": encode_bytes(["x" * (2 * 1024 * 1024)])},
     grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    ("a tensor for an LLM graph", {"model": LLM, "name": "input"}, INVALID,
     "input 'input' takes completion and chat requests"),
]


@pytest.mark.parametrize(("case", "fields", "code", "message"), GRPC,
                         ids=[c[0] for c in GRPC])
def test_kserve_grpc(served: Server, case: str, fields: dict[str, Any], code: grpc.StatusCode,
                     message: str) -> None:
    error = refused_infer(served.grpc_url, grpc_request(**fields))
    assert error.code() == code
    assert message in (error.details() or "")
    assert "Traceback" not in (error.details() or "")
    assert_ready(served)


def test_kserve_grpc_wrong_typed_parameter_and_typed_with_raw(served: Server) -> None:
    with grpc.insecure_channel(served.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = grpc_request()
        request.parameters["OVMS_MP_TIMESTAMP"].string_param = "soon"
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=60)
        assert info.value.code() == INVALID
        assert "OVMS_MP_TIMESTAMP" in (info.value.details() or "")
        both = grpc_request()
        both.inputs[0].contents.bytes_contents.append(b"hi")
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(both, timeout=60)
        assert info.value.code() == INVALID
        assert "typed contents beside raw_input_contents" in (info.value.details() or "")
    assert_ready(served)


# -- OpenAI: (case, path, body, param named) ---------------------------------------------------

COMPLETION = {"model": LLM, "prompt": "Hi", "max_tokens": 4}
CHAT = {"model": LLM, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
OUT_OF_RANGE = {"temperature": 3, "top_p": 0, "top_k": -2, "max_tokens": 0, "n": 0,
                "presence_penalty": 3, "frequency_penalty": -3, "repetition_penalty": 0,
                "min_p": 1, "min_tokens": -1, "seed": -1, "top_logprobs": 21,
                "num_assistant_tokens": 0, "max_ngram_size": 0}
WRONG_TYPE = {"stream": "yes", "echo": 0, "ignore_eos": "no", "max_tokens": "many",
              "stop_token_ids": "x", "stop": 5,
              # numbers in strings are refused, as OpenAI's API does
              "temperature": "0.5", "top_p": "1", "seed": "7", "n": "2", "min_tokens": 1.5}
UNSUPPORTED = {"logit_bias": {"1": 5}, "tools": [{"type": "function"}],
               "functions": [{"name": "f"}], "tool_choice": "required",
               "use_beam_search": True, "prompt_logprobs": 1, "bad_words": ["x"],
               "allowed_token_ids": [1], "guided_grammar": "root ::= 'a'",
               "skip_special_tokens": False, "chat_template": "{{ x }}",
               "add_generation_prompt": False, "continue_final_message": True,
               "truncate_prompt_tokens": 5, "suffix": "x", "num_assistant_tokens": 2}

OPENAI: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    *[(f"{name} out of range", "completions", {**COMPLETION, name: value}, 400, name)
      for name, value in OUT_OF_RANGE.items()],
    *[(f"{name} of the wrong type", "completions", {**COMPLETION, name: value}, 400, name)
      for name, value in WRONG_TYPE.items()],
    *[(f"{name} not supported", "completions", {**COMPLETION, name: value}, 400, name)
      for name, value in UNSUPPORTED.items()],
    ("unknown model", "completions", {**COMPLETION, "model": "nope"}, 404, "model"),
    ("no prompt", "completions", {"model": LLM}, 400, "prompt"),
    ("empty prompt", "completions", {**COMPLETION, "prompt": ""}, 400, "prompt"),
    ("empty prompt, streamed", "completions", {**COMPLETION, "prompt": "", "stream": True},
     400, "prompt"),
    ("empty prompt in a list", "completions", {**COMPLETION, "prompt": [""]}, 400, "prompt"),
    ("an empty prompt after another", "completions", {**COMPLETION, "prompt": ["a", ""]},
     400, "prompt.1"),
    ("prompt over the context, streamed", "completions",
     {**COMPLETION, "prompt": "word " * 9000, "stream": True}, 400, "prompt"),
    ("alternatives asked for", "completions", {**COMPLETION, "logprobs": 2}, 400, "logprobs"),
    ("two constraints", "completions",
     {**COMPLETION, "guided_regex": "a+", "guided_choice": ["a"]}, 400, "guided_choice"),
    ("no messages", "chat/completions", {"model": LLM}, 400, "messages"),
    ("messages not a list", "chat/completions", {**CHAT, "messages": "hi"}, 400, "messages"),
    ("lone surrogate", "chat/completions",
     {**CHAT, "messages": [{"role": "user", "content": "\ud800"}]}, 400, "messages"),
    ("alternatives in chat", "chat/completions", {**CHAT, "logprobs": True,
                                                  "top_logprobs": 2}, 400, "top_logprobs"),
    ("bad response_format", "chat/completions",
     {**CHAT, "response_format": {"type": "xml"}}, 400, "response_format"),
    ("embeddings of a chat model", "embeddings", {"model": LLM, "input": "hi"}, 400,
     "model"),
]


@pytest.mark.parametrize(("case", "path", "body", "status", "param"), OPENAI,
                         ids=[c[0] for c in OPENAI])
def test_openai(served: Server, case: str, path: str, body: dict[str, Any], status: int,
                param: str | None) -> None:
    content = json.dumps(body).encode()  # ASCII: a lone surrogate stays an escape
    reply = httpx.post(f"{served.rest_url}/v1/{path}", content=content, timeout=60,
                       headers={"Content-Type": "application/json"})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert param is not None and param in error["message"], error
    assert "Traceback" not in reply.text
    assert_ready(served)


@pytest.mark.parametrize("path", ["completions", "chat/completions", "embeddings"])
def test_openai_empty_body_names_the_fields(served: Server, path: str) -> None:
    """No body at all: a 400 naming the fields the request needs."""
    reply = httpx.post(f"{served.rest_url}/v1/{path}", content=b"", timeout=60,
                       headers={"Content-Type": "application/json"})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == "model" and "the request body is empty" in error["message"]
    needed = {"completions": "prompt", "chat/completions": "messages", "embeddings": "input"}
    assert needed[path] in error["message"]
    assert_ready(served)


def test_the_matrix_is_large_enough() -> None:
    assert len(REST) + len(GRPC) + len(OPENAI) >= 60


def raw_http(server: Server, request: bytes) -> tuple[str, bytes]:
    """Send ``request`` on a new connection, read until the server closes it."""
    port = int(server.rest_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1").lower(), body


def test_an_http_1_0_client_gets_no_chunked_stream(served: Server) -> None:
    body = json.dumps({"model": LLM, "prompt": "Hi", "max_tokens": 8, "ignore_eos": True,
                       "stream": True}).encode()
    request = (b"POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    head, payload = raw_http(served, request)
    assert head.startswith("http/1.1 200")
    assert "transfer-encoding" not in head and "connection: close" in head
    events = [line for line in payload.decode().split("\n\n") if line]
    assert events[-1] == "data: [DONE]" and len(events) >= 3  # whole events, unframed
    # the same over HTTP/1.1 is chunked, as before
    head, _ = raw_http(served, request.replace(b"HTTP/1.0", b"HTTP/1.1", 1).replace(
        b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    assert "transfer-encoding: chunked" in head
    assert_ready(served)
