"""Reranking through a real server on the built-in reranker (scripts/make_reranker.py):
Cohere's /v3/rerank (OVMS's shape), vLLM's /v1/rerank and /v1/score (and at the root) through
httpx, the RAG graph and the KServe retriever with their rerank stage on, and the 400s naming
the field. No verdict depends on what the model scores beyond ordering and consistency: results
are sorted, ``top_n`` and ``return_documents`` are honoured, and the same (query, document)
pair gets the same score whichever endpoint or batch it comes through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.conftest import DEFAULT_MODEL_DIR, EMBEDDING_MODEL_DIR, REPO, RERANKER_DIR
from tests.transport.server import Server, start_server

MODEL = "minilm-l6-reranker"
QUERY = "Where do emperor penguins keep their eggs warm?"
DOCS = ["Mount Etna in Sicily is one of the most active volcanoes in the world.",
        "Emperor penguins breed during the Antarctic winter; the males keep the eggs warm on "
        "their feet.",
        "Paris is the capital of France.",
        "Penguins are flightless birds of the Southern Hemisphere.",
        "The theory of relativity was developed by Albert Einstein."]
#: the same pair through another endpoint or in another batch (other padding): equal to this
ATOL = 2e-4
PENGUINS = ("Penguins are flightless birds that live almost only in the Southern Hemisphere. "
            "Emperor penguins breed during the Antarctic winter and the males keep the eggs "
            "warm on their feet.\n")
VOLCANOES = ("# Volcanoes\n\nA volcano is a rupture in the crust of a planet where lava, "
             "volcanic ash and gases escape from a magma chamber below the surface. Mount Etna "
             "in Sicily is one of the most active volcanoes in the world.\n")


def _graph(name: str, store: Path, rerank: bool = False) -> str:
    text = (REPO / f"graphs/{name}/graph.pbtxt").read_text()
    text = text.replace('"../../models/all-minilm-l6-v2"', f'"{EMBEDDING_MODEL_DIR}"')
    text = text.replace('"../../models/smollm2-135m-instruct"', f'"{DEFAULT_MODEL_DIR}"')
    text = text.replace('"../../models/minilm-l6-reranker"', f'"{RERANKER_DIR}"')
    text = text.replace('"../../data/chroma"', f'"{store}"')
    text = text.replace("max_allowed_chunks: 10000", "max_allowed_chunks: 50")
    if rerank:
        text = text.replace("top_k: 4", f'top_k: 2\n      rerank_models_path: "{RERANKER_DIR}"'
                            "\n      rerank_candidates: 6")
    return text


@pytest.fixture(scope="module")
def server(reranker_model_dir: Path, default_model_dir: Path, embedding_model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("rerank")
    graphs = {MODEL: _graph("rerank", root / "store"),
              "rag": _graph("rag", root / "store", rerank=True),
              "retriever": _graph("retriever", root / "store", rerank=True)}
    for name, text in graphs.items():
        (root / name).mkdir()
        (root / name / "graph.pbtxt").write_text(text)
    config = root / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": n, "base_path": str(root / n)} for n in graphs]}))
    server = start_server(config)
    yield server
    assert server.terminate() == 0


def post(server: Server, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{server.rest_url}{path}", json=body, timeout=60)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_cohere_rerank(server: Server) -> None:
    """OVMS's /v3/rerank: every document once, sorted; top_n cuts; documents only when asked;
    objects are ranked by their text and returned as given."""
    full = ok(post(server, "/v3/rerank", {"model": MODEL, "query": QUERY, "documents": DOCS}))
    results = full["results"]
    assert sorted(r["index"] for r in results) == list(range(len(DOCS)))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all("document" not in r for r in results) and full["id"]
    by_index = {r["index"]: r["relevance_score"] for r in results}

    top = ok(post(server, "/v3/rerank", {"model": MODEL, "query": QUERY, "documents": DOCS,
                                          "top_n": 2, "return_documents": True}))["results"]
    assert [r["index"] for r in top] == [r["index"] for r in results[:2]]
    assert [r["document"] for r in top] == [{"text": DOCS[r["index"]]} for r in top]
    assert np.allclose([r["relevance_score"] for r in top], scores[:2], atol=ATOL)

    objects = [{"title": f"doc {i}", "text": d} for i, d in enumerate(DOCS)]
    as_objects = ok(post(server, "/v3/rerank", {"query": QUERY, "documents": objects,
                                                 "return_documents": True, "top_n": 10}))
    assert len(as_objects["results"]) == len(DOCS)  # top_n above the count: all of them
    for result in as_objects["results"]:  # model left out: the only reranker
        assert result["document"] == objects[result["index"]]
        assert abs(result["relevance_score"] - by_index[result["index"]]) <= ATOL
    # rank_fields: the fields' text is what gets scored
    fielded = ok(post(server, "/v3/rerank", {"model": MODEL, "query": QUERY,
                                              "documents": objects,
                                              "rank_fields": ["title", "text"]}))
    assert len(fielded["results"]) == len(DOCS)


def test_vllm_rerank_and_score(server: Server) -> None:
    """vLLM's /v1/rerank (documents returned by default, usage) and /v1/score: a pair's score
    is that document's rerank score, one against many and pairwise alike."""
    for path in ("/v1/rerank", "/rerank"):
        body = ok(post(server, path, {"model": MODEL, "query": QUERY, "documents": DOCS}))
        assert body["model"] == MODEL and body["usage"]["total_tokens"] > len(DOCS) * 5
        results = body["results"]
        assert len(results) == len(DOCS)
        assert [r["document"]["text"] for r in results] == [DOCS[r["index"]] for r in results]
        scores = [r["relevance_score"] for r in results]
        assert scores == sorted(scores, reverse=True)
    rerank = {r["index"]: r["relevance_score"] for r in results}
    one = ok(post(server, "/v1/rerank", {"model": MODEL, "query": QUERY, "documents": DOCS,
                                          "top_n": 1, "return_documents": False}))["results"]
    assert len(one) == 1 and one[0]["index"] == results[0]["index"] and "document" not in one[0]

    many = ok(post(server, "/v1/score", {"model": MODEL, "text_1": QUERY, "text_2": DOCS}))
    assert many["object"] == "list" and many["model"] == MODEL
    assert [d["index"] for d in many["data"]] == list(range(len(DOCS)))
    assert all(d["object"] == "score" for d in many["data"])
    assert many["usage"]["prompt_tokens"] == many["usage"]["total_tokens"] > 0
    assert np.allclose([d["score"] for d in many["data"]], [rerank[i] for i in range(len(DOCS))],
                       atol=ATOL)
    pairwise = ok(post(server, "/score", {"text_1": [QUERY, DOCS[0]],
                                          "text_2": [DOCS[1], DOCS[1]]}))["data"]
    alone = ok(post(server, "/v1/score", {"model": MODEL, "text_1": QUERY,
                                          "text_2": DOCS[1]}))["data"]
    assert len(pairwise) == 2 and len(alone) == 1
    assert abs(pairwise[0]["score"] - rerank[1]) <= ATOL
    assert abs(alone[0]["score"] - rerank[1]) <= ATOL  # alone, not in a batch


@pytest.mark.parametrize(("path", "body", "status", "param"), [
    ("/v3/rerank", {"model": MODEL, "documents": DOCS}, 400, "query"),
    ("/v3/rerank", {"model": MODEL, "query": "  ", "documents": DOCS}, 400, "query"),
    ("/v3/rerank", {"model": MODEL, "query": QUERY, "documents": "text"}, 400, "documents"),
    ("/v3/rerank", {"model": MODEL, "query": QUERY, "documents": [1]}, 400, "documents.0"),
    ("/v3/rerank", {"model": MODEL, "query": QUERY, "documents": [{"title": "t"}]}, 400,
     "documents"),
    ("/v3/rerank", {"model": MODEL, "query": QUERY, "documents": DOCS, "top_n": 0}, 400,
     "top_n"),
    ("/v3/rerank", {"model": MODEL, "query": QUERY, "documents": DOCS,
                    "return_documents": "yes"}, 400, "return_documents"),
    ("/v3/rerank", {"model": MODEL, "query": QUERY, "documents": ["x"] * 51}, 400,
     "documents"),
    ("/v3/rerank", {"model": "rag", "query": QUERY, "documents": DOCS}, 400, "model"),
    ("/v3/rerank", {"model": "nope", "query": QUERY, "documents": DOCS}, 404, "model"),
    ("/v1/rerank", {"model": MODEL, "query": QUERY, "documents": [{"text": "x"}]}, 400,
     "documents.0"),
    ("/v1/rerank", {"model": MODEL, "query": QUERY, "documents": DOCS, "top_n": "2"}, 400,
     "top_n"),
    ("/v1/score", {"model": MODEL, "text_1": [QUERY, QUERY], "text_2": DOCS}, 400, "text_2"),
    ("/v1/score", {"model": MODEL, "text_1": [], "text_2": DOCS}, 400, "text_1"),
    ("/v1/score", {"model": MODEL, "text_1": QUERY}, 400, "text_2"),
    ("/score", {"model": MODEL, "text_1": QUERY}, 400, "text_2"),  # vLLM's, at the root
    ("/rerank", {"model": MODEL, "query": QUERY}, 400, "documents"),
    ("/v1/embeddings", {"model": MODEL, "input": "x"}, 400, "model"),
])
def test_bad_input_is_a_400_naming_the_field(server: Server, path: str, body: dict[str, Any],
                                             status: int, param: str | None) -> None:
    response = post(server, path, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    assert error["message"]


def test_rag_sources_come_in_reranked_order(server: Server) -> None:
    """The RAG graph with its rerank stage on: the candidates are reranked and the best top_k
    (2) go into the prompt and come back as sources, each with the score /v1/score gives."""
    for name, text in (("penguins.txt", PENGUINS), ("volcanoes.md", VOLCANOES),
                       ("france.txt", "Paris is the capital of France. " * 5)):
        response = httpx.put(f"{server.rest_url}/v1/rag/rag/documents/{name}",
                             content=text.encode(), timeout=60)
        assert response.status_code == 200, response.text
    question = "Which birds keep their eggs warm on their feet?"
    reply = ok(post(server, "/v1/chat/completions", {
        "model": "rag", "max_tokens": 3, "ignore_eos": True,
        "messages": [{"role": "user", "content": question}]}))
    sources = reply["sources"]
    assert len(sources) == 2  # top_k of rerank_candidates
    reranked = [s["rerank_score"] for s in sources]
    assert reranked == sorted(reranked, reverse=True)
    scored = ok(post(server, "/v1/score", {"text_1": question,
                                           "text_2": [s["text"] for s in sources]}))["data"]
    assert np.allclose([d["score"] for d in scored], reranked, atol=1e-3)  # rounded to 4

    # the KServe retriever: its scores are the rerank scores, best first
    rest = httpclient.InferenceServerClient(f"localhost:{server.rest_port}")
    tensor = httpclient.InferInput("question", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([question.encode()], dtype=np.object_))
    result = rest.infer("retriever", [tensor])
    rest.close()
    scores, documents = result.as_numpy("scores"), result.as_numpy("documents")
    assert scores is not None and documents is not None and len(scores) == 2
    assert list(scores) == sorted(scores, reverse=True)
    again = ok(post(server, "/v1/score", {"text_1": question,
                                          "text_2": [d.decode() for d in documents]}))["data"]
    assert np.allclose([d["score"] for d in again], scores, atol=ATOL)
