"""Retrieval-augmented generation through a real server on the real models: documents
uploaded over HTTP, the RAG graph answering as an OpenAI chat model with its sources, the
retrieval servable over KServe, and the errors (empty store, bad files, long questions, an
unreachable Chroma server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import DEFAULT_MODEL_DIR, EMBEDDING_MODEL_DIR, REPO
from tests.transport.server import Server, start_server

VOLCANOES = ("# Volcanoes\n\nA volcano is a rupture in the crust of a planet where lava, "
             "volcanic ash and gases escape from a magma chamber below the surface. "
             "Mount Etna in Sicily is one of the most active volcanoes in the world.\n") * 3
PENGUINS = ("Penguins are flightless birds that live almost only in the Southern "
            "Hemisphere. Emperor penguins breed during the Antarctic winter and the males "
            "keep the eggs warm on their feet.\n") * 3


def graph(name: str, store: Path, **extra: str) -> str:
    text = (REPO / f"graphs/{name}/graph.pbtxt").read_text()
    text = text.replace('"../../models/all-minilm-l6-v2"', f'"{EMBEDDING_MODEL_DIR}"')
    text = text.replace('"../../models/smollm2-135m-instruct"', f'"{DEFAULT_MODEL_DIR}"')
    text = text.replace('"../../data/chroma"', f'"{store}"')
    for key, value in extra.items():
        text = text.replace("top_k: 4", f"top_k: 4\n      {key}: {value}")
    return text


@pytest.fixture(scope="module")
def server(default_model_dir: Path, embedding_model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("rag")
    for name, text in (("rag", graph("rag", root / "store")),
                       ("retriever", graph("retriever", root / "store")),
                       ("unreachable", graph("retriever", root / "x",
                                             chroma_url='"http://127.0.0.1:9"'))):
        (root / name).mkdir()
        (root / name / "graph.pbtxt").write_text(text)
    config = root / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": n, "base_path": str(root / n)} for n in ("rag", "retriever", "unreachable")]}))
    server = start_server(config, all_ready=False)  # the unreachable store
    yield server
    assert server.terminate() == 0


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.rest_url}/v1", api_key="unused") as client:
        yield client


def put(server: Server, name: str, data: bytes) -> httpx.Response:
    return httpx.put(f"{server.rest_url}/v1/rag/rag/documents/{name}", content=data,
                     timeout=60)


def test_rag_end_to_end(server: Server, client: openai.OpenAI) -> None:
    # nothing ingested yet: a clear error, not an answer without context
    with pytest.raises(openai.APIStatusError) as empty:
        client.chat.completions.create(model="rag", messages=[
            {"role": "user", "content": "What is a volcano?"}], max_tokens=5)
    assert empty.value.status_code == 503 and "ingest documents first" in str(empty.value)

    first = put(server, "geology/volcanoes.md", VOLCANOES.encode())
    assert first.status_code == 200, first.text
    assert first.json()["added"] >= 1 and first.json()["skipped"] == {}
    assert put(server, "penguins.txt", PENGUINS.encode()).json()["added"] >= 1
    again = put(server, "penguins.txt", PENGUINS.encode()).json()
    assert again["added"] == 0 and again["unchanged"] >= 1  # only what changed is embedded
    listed = httpx.get(f"{server.rest_url}/v1/rag/rag/documents").json()
    assert set(listed["documents"]) == {"geology/volcanoes.md", "penguins.txt"}

    reply = client.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": "Where do emperor penguins breed?"}],
        max_tokens=12, extra_body={"ignore_eos": True})
    assert reply.model == "rag" and reply.usage is not None
    assert reply.usage.completion_tokens == 12  # forced: the text may be anything
    sources = (reply.model_extra or {})["sources"]
    assert sources[0]["source"] == "penguins.txt" and "Emperor" in sources[0]["text"]
    assert reply.usage.prompt_tokens > 60  # the context went into the prompt

    events = [json.loads(line[6:]) for line in httpx.post(
        f"{server.rest_url}/v1/chat/completions", timeout=60, json={
            "model": "rag", "stream": True, "max_tokens": 4, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Which volcano is very active?"}]},
    ).text.splitlines() if line.startswith("data: {")]
    with_sources = [e for e in events if "sources" in e]
    assert len(with_sources) == 1
    assert with_sources[0]["sources"][0]["source"] == "geology/volcanoes.md"

    rest = httpclient.InferenceServerClient(f"localhost:{server.rest_port}")
    question = httpclient.InferInput("question", [1], "BYTES")
    question.set_data_from_numpy(np.array([b"flightless birds"], dtype=np.object_))
    result = rest.infer("retriever", [question])
    rest.close()
    assert result.as_numpy("sources")[0] == b"penguins.txt"
    scores = result.as_numpy("scores")
    assert scores is not None and list(scores) == sorted(scores, reverse=True)
    assert len(result.as_numpy("documents")) == len(scores) >= 2


@pytest.mark.parametrize(("name", "data", "message"), [
    ("notes.docx", b"PK\x03\x04", "unsupported file type"),
    ("broken.pdf", b"%PDF-1.4 not really", "not a readable PDF"),
    ("empty.md", b"", "the body is empty"),
    ("latin.txt", "caf\xe9".encode("latin-1"), "not UTF-8"),
])
def test_bad_documents_are_a_400_naming_them(server: Server, name: str, data: bytes,
                                            message: str) -> None:
    response = put(server, name, data)
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert name not in httpx.get(f"{server.rest_url}/v1/rag/rag/documents").json()["documents"]


def test_long_question_and_unreachable_store(server: Server, client: openai.OpenAI) -> None:
    put(server, "penguins.txt", PENGUINS.encode())
    with pytest.raises(openai.BadRequestError, match="cannot be searched"):
        client.chat.completions.create(model="rag", max_tokens=2, messages=[
            {"role": "user", "content": "penguin " * 800}])
    response = httpx.post(f"{server.rest_url}/v2/models/unreachable/infer", json={
        "inputs": [{"name": "question", "shape": [1], "datatype": "BYTES", "data": ["x"]}]})
    assert response.status_code == 503  # the store's address is for the log, not clients
    assert "is not available (error id " in response.text and "127.0.0.1" not in response.text
    assert httpx.get(f"{server.rest_url}/v2/models/retriever/ready").status_code == 200


def test_the_server_is_not_ready_while_a_servable_is_unavailable(server: Server) -> None:
    """KServe v2: the server is ready when every model is. The unreachable store's servable
    keeps REST, gRPC and the probes of vLLM and NIM not ready, while the others serve."""
    for probe in ("/v2/health/ready", "/health", "/v1/health/ready"):
        assert httpx.get(f"{server.rest_url}{probe}").status_code == 503, probe
    assert httpx.get(f"{server.rest_url}/v2/health/live").status_code == 200
    assert httpx.get(f"{server.rest_url}/v2/models/retriever/ready").status_code == 200
    assert httpx.get(f"{server.rest_url}/v2/models/unreachable/ready").status_code == 503
    client = grpcclient.InferenceServerClient(server.grpc_url)
    assert client.is_server_live() and not client.is_server_ready()
    assert client.is_model_ready("retriever") and not client.is_model_ready("unreachable")
    with grpc.insecure_channel(server.grpc_url) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
