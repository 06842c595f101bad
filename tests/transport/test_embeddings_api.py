"""Embeddings through a real server: OpenAI's /v1/embeddings and /v3/embeddings with the openai
SDK and raw HTTP (floats and base64, usage), and KServe v2 REST and gRPC with tritonclient."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.conftest import REPO
from tests.transport.server import Server, start_server

MODEL = "all-minilm-l6-v2"
TEXTS = ["What is the theory of relativity?", "Paris is the capital of France."]


@pytest.fixture(scope="module")
def server(embedding_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("embeddings") / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": MODEL, "base_path": str(REPO / "graphs/embeddings")}]}))
    server = start_server(config)
    yield server
    assert server.terminate() == 0


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.rest_url}/v1", api_key="unused") as client:
        yield client


def cosines(a: object, b: object) -> np.ndarray:
    """Row by row: separate requests of the same texts agree to this, not to the last bit
    (another batch shape, padding or bf16 kernels); texts of other meanings are far below."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    result: np.ndarray = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1)
                                             * np.linalg.norm(y, axis=-1))
    return result


def test_openai_sdk_floats_and_base64_agree(client: openai.OpenAI, server: Server) -> None:
    """Floats and base64 (little-endian float32, as the SDK decodes it) of the same texts:
    exact within one response, the same vectors (cosine) across requests and batch shapes."""
    floats = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    assert floats.model == MODEL and [d.index for d in floats.data] == [0, 1]
    vectors = np.array([d.embedding for d in floats.data])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 10
    with openai.OpenAI(base_url=f"{server.rest_url}/v3", api_key="unused") as v3:
        raw = v3.embeddings.with_raw_response.create(model=MODEL, input=TEXTS)  # base64
    wire = np.array([np.frombuffer(base64.b64decode(d["embedding"]), "<f4")
                     for d in raw.http_response.json()["data"]])
    decoded = np.array([d.embedding for d in raw.parse().data])
    assert wire.shape == (2, 384) and np.array_equal(decoded, wire)
    assert cosines(wire, vectors).min() >= 0.999
    one = client.embeddings.create(model=MODEL, input=TEXTS[0])  # alone, not in a batch
    assert cosines(one.data[0].embedding, vectors[0]) >= 0.999
    # related texts are closer than unrelated ones
    query = client.embeddings.create(model=MODEL, input="Einstein's relativity")
    scores = vectors @ np.array(query.data[0].embedding)
    assert scores[0] > scores[1]


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": MODEL, "input": []}, 400, "input"),
    ({"model": MODEL, "input": [1, 2, 3]}, 400, "input"),
    ({"model": MODEL, "input": ""}, 400, None),
    ({"model": MODEL, "input": "x", "dimensions": 12}, 400, "dimensions"),
    ({"model": MODEL, "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
    ({"model": MODEL, "input": "word " * 700}, 400, None),
    ({"model": "nope", "input": "x"}, 404, "model"),
    ({"input": "x"}, 400, "model"),
])
def test_bad_requests_name_the_field(server: Server, body: dict[str, object], status: int,
                                     param: str | None) -> None:
    response = httpx.post(f"{server.rest_url}/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]
    assert "Traceback" not in response.text


def test_kserve_rest_and_grpc(server: Server, client: openai.OpenAI) -> None:
    expected = np.array([d.embedding for d in client.embeddings.create(
        model=MODEL, input=TEXTS, encoding_format="float").data])
    texts = np.array([t.encode() for t in TEXTS], dtype=np.object_)
    rest = httpclient.InferenceServerClient(f"localhost:{server.rest_port}")
    inputs = [httpclient.InferInput("input", [2], "BYTES")]
    inputs[0].set_data_from_numpy(texts)
    got = rest.infer(MODEL, inputs).as_numpy("output")
    rest.close()
    assert got is not None and got.shape == (2, 384)
    assert cosines(got, expected).min() >= 0.999  # separate requests: see cosines
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    grpc_inputs = [grpcclient.InferInput("input", [2], "BYTES")]
    grpc_inputs[0].set_data_from_numpy(texts)
    got = grpc.infer(MODEL, grpc_inputs).as_numpy("output")
    grpc.close()
    assert got is not None and got.shape == (2, 384)
    assert cosines(got, expected).min() >= 0.999
