"""OVMS's LLM demo handlers call ``OVModelForCausalLM.clone()`` per request (OVMS's image ships
an optimum-intel with it; PyPI's has none). Under ovserve such a handler runs unchanged: clones
share the compiled model and keep their own KV cache, so concurrent requests each get exactly
what they get alone.

The handlers pin f32 and one CPU stream (``OV_CONFIG``, laid over $OVSERVE_PLUGIN_CONFIG's CPU
entry, which optimum-intel would not read by itself): every request is batch 1 with
the same shapes alone or among others, and their steps interleave on the one stream, so equal
greedy tokens check that the clones keep their KV caches apart, not the CPU's kernels. Should a
kernel split its work otherwise under load, f32's rounding (about 1e-6) leaves greedy's choices
alone where bf16's (about 1e-2, the default on some Xeons) could flip a near-tie."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.conftest import plugin_config
from tests.graphs import python_node, write_graph, write_handler
from tests.transport.server import Server, start_server

# What both handlers share, as OVMS's demos start: the model compiled once in initialize
LOAD = '''
import struct
import threading
from optimum.intel import OVModelForCausalLM
from pyovms import Tensor
from transformers import AutoTokenizer, TextIteratorStreamer
from ovserve.protocol.tensor import bytes_tensor, decode_bytes

MODEL = {model!r}
OV_CONFIG = {ov_config!r}

class OvmsPythonModel:
    def initialize(self, kwargs):
        self.model = OVModelForCausalLM.from_pretrained(MODEL, compile=True, ov_config=OV_CONFIG)
        self.tokenizer = AutoTokenizer.from_pretrained(MODEL)
'''

HANDLER = LOAD + '''
    def execute(self, inputs):
        prompt = decode_bytes(inputs[0])[0].decode()
        model = self.model.clone()  # as OVMS's demo handlers do, once per request
        ids = self.tokenizer(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        new = out[0, ids["input_ids"].shape[1]:].tolist()
        return [Tensor("tokens", struct.pack("<8q", *new), shape=[8], datatype="INT64")]
'''

# OVMS's streaming demo handler: a clone per request, generate() in a thread feeding a
# TextIteratorStreamer, each piece yielded as it comes (a generator over a LOOPBACK edge)
STREAM_HANDLER = LOAD + '''
    def execute(self, inputs):
        prompt = decode_bytes(inputs[0])[0].decode()
        model = self.model.clone()
        # a timeout: should generate() fail in its thread, the handler raises instead of waiting
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, timeout=120)
        ids = self.tokenizer(prompt, return_tensors="pt")
        thread = threading.Thread(target=model.generate, kwargs=dict(
            **ids, streamer=streamer, max_new_tokens=12, min_new_tokens=12, do_sample=False))
        thread.start()
        for piece in streamer:
            yield [bytes_tensor("piece", [piece])]
        thread.join()
        yield [Tensor("end_signal", b"")]
'''

PROMPTS = ["The Moon is", "Honey bees make", "The Roman Empire was", "Jazz music began"]


@pytest.fixture(scope="module")
def server(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ovms_handler")
    # f32 and one stream (module docstring) over $OVSERVE_PLUGIN_CONFIG's CPU entry
    ov_config = {**plugin_config(), "INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": "1"}
    write_handler(root / "clone", HANDLER.format(model=str(default_model_dir),
                                                 ov_config=ov_config))
    write_graph(root / "clone", ["prompt"], ["tokens"], [
        python_node("cloneNode", "model.py", ["IN:prompt"], ["OUT:tokens"])])
    write_handler(root / "clone_stream", STREAM_HANDLER.format(model=str(default_model_dir),
                                                               ov_config=ov_config))
    write_graph(root / "clone_stream", ["prompt"], ["piece", "end_signal"], [
        python_node("streamNode", "model.py", ["IN:prompt"],
                    ["OUT:piece", "OUT_END:end_signal"], loopback=True)])
    config = root / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "clone"}, {"name": "clone_stream"}]}))
    server = start_server(config)
    yield server
    assert server.terminate() == 0


def infer(server: Server, prompt: str) -> list[int]:
    response = httpx.post(f"{server.rest_url}/v2/models/clone/infer", timeout=120, json={
        "inputs": [{"name": "prompt", "shape": [1], "datatype": "BYTES", "data": [prompt]}]})
    assert response.status_code == 200, response.text
    tokens: list[int] = response.json()["outputs"][0]["data"]
    return tokens


def test_handlers_calling_clone_run_concurrently(server: Server) -> None:
    alone = [infer(server, p) for p in PROMPTS]
    assert all(len(tokens) == 8 for tokens in alone)
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(lambda p: infer(server, p), PROMPTS * 2))
    assert together == alone * 2  # no clone saw another's KV cache


def test_install_adds_clone_to_pypis_optimum_intel() -> None:
    from optimum.intel import OVModelForCausalLM

    from ovserve.nodes import ovms_env

    ovms_env.install()
    assert OVModelForCausalLM.clone is ovms_env.clone


def stream(server: Server, prompt: str) -> str:
    """One ModelStreamInfer call, as the seed's streaming client makes it: the pieces joined."""
    pieces: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: pieces.put((result, error)))
    tensor = grpcclient.InferInput("prompt", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([prompt.encode()], dtype=np.object_))
    client.async_stream_infer("clone_stream", [tensor])
    text = ""
    try:
        while True:
            result, error = pieces.get(timeout=120)
            assert error is None, error
            if result.as_numpy("end_signal") is not None:
                return text
            text += b"".join(result.as_numpy("piece").tolist()).decode()
    finally:
        client.stop_stream()
        client.close()


def test_streaming_handlers_calling_clone_under_concurrent_streams(server: Server) -> None:
    alone = [stream(server, p) for p in PROMPTS]
    assert all(alone)  # 12 tokens forced, special tokens not skipped: never empty
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(lambda p: stream(server, p), PROMPTS))
    assert together == alone  # each stream got its own clone's tokens, none interleaved
