"""The seed demo end to end: the real model behind a real server, the seed's clients, curl."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.conftest import REPO
from tests.toolchain.coherence import assert_coherent
from tests.transport.server import Server, start_server

QUESTION = "What is the theory of relativity?"
PROMPTS = [QUESTION, "Name three primary colors.", "Write a haiku about the sea."]
MAX_TOKENS = 96
ROLE_LINE = re.compile(r"^(?:user|assistant|system)$", re.M)


@pytest.fixture(scope="module")
def stream_server(default_model_dir: object) -> Iterator[Server]:
    # lengths forced: every prompt gets MAX_TOKENS tokens, whatever the model would say
    server = start_server(REPO / "servables/servable_stream/config.json",
                          env={"OVSERVE_MAX_TOKENS": str(MAX_TOKENS), "OVSERVE_IGNORE_EOS": "1"})
    yield server
    assert server.terminate() == 0


def engine_metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.rest_url}/metrics").text
    match = re.search(rf'^{name}{{model="smollm2-135m-instruct"}} (\S+)$', text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def prompts_input(prompts: list[str]) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("pre_prompt", [len(prompts)], "BYTES")
    tensor.set_data_from_numpy(np.array([p.encode() for p in prompts], dtype=np.object_))
    return tensor


def stream(server: Server, prompts: list[str], stop_after: int | None = None) -> list[Any]:
    """Responses of one ModelStreamInfer call, in order, until end_signal (or stop_after)."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    events: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: events.put((result, error)))
    client.async_stream_infer(model_name="python_model", inputs=[prompts_input(prompts)])
    got: list[Any] = []
    try:
        while True:
            result, error = events.get(timeout=120)
            if error is not None:
                got.append(error)
                break
            got.append(result)
            if result.as_numpy("end_signal") is not None or len(got) == stop_after:
                break
    finally:
        client.stop_stream(cancel_requests=stop_after is not None)
        client.close()
    return got


@pytest.mark.parametrize("prompts", [PROMPTS[:1], PROMPTS], ids=["one", "three"])
def test_stream(stream_server: Server, prompts: list[str]) -> None:
    before = engine_metric(stream_server, "ovserve_engine_generated_tokens_total")
    got = stream(stream_server, prompts)
    kinds = [next(n for n in ("completion", "token_count", "end_signal")
                  if r.as_numpy(n) is not None) for r in got]
    assert kinds[-2:] == ["token_count", "end_signal"]
    assert set(kinds[:-2]) == {"completion"} and len(kinds) > 3
    texts = [""] * len(prompts)
    for result in got[:-2]:
        deltas = result.as_numpy("completion")
        assert deltas.shape == (len(prompts),)
        for i, delta in enumerate(deltas):
            texts[i] += delta.decode()
    token_count = int(got[-2].as_numpy("token_count")[0])
    after = engine_metric(stream_server, "ovserve_engine_generated_tokens_total")
    assert token_count == after - before  # the tokens the engine actually generated
    assert token_count == MAX_TOKENS * len(prompts)
    # The length is forced past the end of the model's turn (OVSERVE_IGNORE_EOS), where it may
    # start a new chat turn ("user", "assistant" or "system" on a line of its own) with whatever
    # comes to it. The deltas of its own answer to the relativity question (all 96 tokens, or
    # however long it chose to be) must add up to language, not a loop or noise.
    answer = ROLE_LINE.split(texts[0], maxsplit=1)[0]
    assert_coherent(answer, min_words=20 if answer == texts[0] else 4)
    assert all(t.strip() for t in texts)


@pytest.mark.parametrize("prompts", [PROMPTS[:1], PROMPTS], ids=["one", "three"])
def test_unary_on_the_stream_servable(stream_server: Server, prompts: list[str]) -> None:
    client = grpcclient.InferenceServerClient(stream_server.grpc_url)
    result = client.infer("python_model", [prompts_input(prompts)], client_timeout=600)
    completions = [c.decode() for c in result.as_numpy("completion")]
    assert len(completions) == len(prompts) and all(c.strip() for c in completions)
    assert int(result.as_numpy("token_count")[0]) == MAX_TOKENS * len(prompts)


def test_seed_clients_with_their_defaults_and_several_prompts(stream_server: Server) -> None:
    url = ["--url", stream_server.grpc_url]
    unary = subprocess.run([sys.executable, str(REPO / "clients/client_unary.py"), *url],
                           capture_output=True, text=True, timeout=300, check=False)
    assert unary.returncode == 0, unary.stderr
    assert f"Number of tokens: {MAX_TOKENS}\n" in unary.stdout  # its one default prompt
    for line in ("Number of tokens:", "Tokens per second:", "Time per token:", "Total time:"):
        assert line in unary.stdout
    streamed = subprocess.run(
        [sys.executable, str(REPO / "clients/client_stream.py"), *url, "-p", PROMPTS[0],
         "-p", PROMPTS[1]], capture_output=True, text=True, timeout=300, check=False)
    assert streamed.returncode == 0, streamed.stderr
    assert "== Prompt 2: Name three primary colors." in streamed.stdout
    for line in ("Number of responses:", "First response time:", "Average response time:"):
        assert line in streamed.stdout


def test_curl_rest(stream_server: Server) -> None:
    body = json.dumps({"inputs": [{"name": "pre_prompt", "shape": [1], "datatype": "BYTES",
                                   "data": [QUESTION]}]})
    result = subprocess.run(
        ["curl", "-s", "-d", body, f"{stream_server.rest_url}/v2/models/python_model/infer"],
        capture_output=True, text=True, timeout=300, check=True)
    reply = json.loads(result.stdout)
    assert reply["model_name"] == "python_model"
    completion, count = reply["outputs"]
    assert (completion["name"], completion["datatype"], completion["shape"]) == (
        "completion", "BYTES", [1])
    assert completion["data"][0].strip()
    assert count["name"] == "token_count" and count["data"] == [MAX_TOKENS]


def test_eight_concurrent_streams_complete(stream_server: Server) -> None:
    results: dict[int, list[Any]] = {}

    def one(i: int) -> None:
        results[i] = stream(stream_server, [f"Tell me fact number {i} about the Moon."])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(results) == list(range(8))
    for got in results.values():
        assert got[-1].as_numpy("end_signal") is not None


def test_prompt_over_the_context_is_a_clear_error(stream_server: Server) -> None:
    long_prompt = "word " * 9000
    client = grpcclient.InferenceServerClient(stream_server.grpc_url)
    with pytest.raises(InferenceServerException) as info:
        client.infer("python_model", [prompts_input([long_prompt])])
    assert "StatusCode.INVALID_ARGUMENT" in str(info.value.status())
    assert "over the model's context of 8192 tokens" in info.value.message()
    (error,) = stream(stream_server, [long_prompt])
    assert "over the model's context of 8192 tokens" in str(error)
    assert stream(stream_server, [QUESTION])[-1].as_numpy("end_signal") is not None


def first_stream_error(server: Server, tensor: grpcclient.InferInput) -> Any:
    """The error of the first response to ``tensor`` on a ModelStreamInfer stream."""
    events: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: events.put((result, error)))
    try:
        client.async_stream_infer(model_name="python_model", inputs=[tensor])
        return events.get(timeout=60)[1]
    finally:
        client.stop_stream()
        client.close()


def test_numbers_or_non_utf8_for_a_prompt_are_the_clients_error(stream_server: Server) -> None:
    """FP32 data, or bytes that are not UTF-8, where the handler reads text: 400 /
    INVALID_ARGUMENT naming the input (not the handler's 500), unary and on a stream."""
    numbers = grpcclient.InferInput("pre_prompt", [2], "FP32")
    numbers.set_data_from_numpy(np.array([1.5, 2.5], dtype=np.float32))
    binary = grpcclient.InferInput("pre_prompt", [1], "BYTES")
    binary.set_data_from_numpy(np.array([b"\xff\xfe not text"], dtype=np.object_))
    client = grpcclient.InferenceServerClient(stream_server.grpc_url)
    for tensor, message in ((numbers, "input 'pre_prompt': expected BYTES (strings), got FP32"),
                            (binary, "input 'pre_prompt': element 0 is not UTF-8 text")):
        with pytest.raises(InferenceServerException) as info:
            client.infer("python_model", [tensor])
        assert "StatusCode.INVALID_ARGUMENT" in str(info.value.status())
        assert message in info.value.message()
        error = first_stream_error(stream_server, tensor)
        assert error is not None and message in str(error)
    reply = httpx.post(f"{stream_server.rest_url}/v2/models/python_model/infer", json={
        "inputs": [{"name": "pre_prompt", "shape": [1], "datatype": "FP32", "data": [1.0]}]})
    assert reply.status_code == 400
    assert "expected BYTES (strings), got FP32" in reply.json()["error"]


def test_unary_servable(default_model_dir: object) -> None:
    server = start_server(REPO / "servables/servable_unary/config.json",
                          env={"OVSERVE_MAX_TOKENS": "48", "OVSERVE_IGNORE_EOS": "1"})
    try:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        result = client.infer("python_model", [prompts_input(PROMPTS)], client_timeout=600)
        assert [c.decode().strip() != "" for c in result.as_numpy("completion")] == [True] * 3
        assert int(result.as_numpy("token_count")[0]) == 48 * 3
        # a stream to the unary servable gets its answer as one response
        (first,) = stream(server, PROMPTS[:1], stop_after=1)
        assert first.as_numpy("completion")[0].decode().strip()
    finally:
        assert server.terminate() == 0
