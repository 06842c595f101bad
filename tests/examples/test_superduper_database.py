"""superduper on a real database (SQLite through superduper-sql) with ovserve as its model
server: examples/superduper_database.py run from ``.venv-clients`` against a live server on the
built-in models, as its users run it. The database file is then read here with sqlite3, apart
from superduper: rows in, an answer for every row (those inserted after the Listener too),
vectors of the embedding model's size, a similarity query whose rows are the table's nearest by
cosine, best first, and a LoRA adapter trained from the table's rows that the server lists and
answers with. Nothing depends on what the model says: answers are forced to a length.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.transport.server import Server, start_server

CLIENTS = REPO / ".venv-clients" / "bin" / "python"
EMBEDDING_MODEL = "all-minilm-l6-v2"
DIMENSIONS = 384
ADAPTER = "faq-style"
TOKENS = 8  # every answer exactly this long (ignore_eos + min_tokens)
TOP_K = 3
TOLERANCE = 1e-4  # cosine


@dataclass
class Run:
    """One run of the example: its report, its stderr, the database and the adapter folder."""
    server: Server
    report: dict[str, Any]
    stderr: str
    database: Path
    lora_dir: Path


@pytest.fixture(scope="module")
def run(default_model_dir: Path, embedding_model_dir: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    assert CLIENTS.exists(), "the clients' venv is missing: `make test` builds .venv-clients"
    work = tmp_path_factory.mktemp("superduper")
    lora_dir = work / "adapters"
    lora_dir.mkdir()
    server = start_server(REPO / "servables/config.json", "--lora_dir", str(lora_dir))
    try:
        database = work / "faq.db"
        result = subprocess.run(
            [str(CLIENTS), str(REPO / "examples/superduper_database.py"),
             "--base_url", f"{server.rest_url}/v1", "--database", f"sqlite://{database}",
             "--artifacts", str(work / "artifacts"), "--lora_dir", str(lora_dir),
             "--max_tokens", str(TOKENS), "--exact_tokens", "--top_k", str(TOP_K),
             "--steps", "3"],
            capture_output=True, text=True, timeout=1200, cwd=work)
        assert result.returncode == 0, f"the example failed:\n{result.stdout}\n{result.stderr}"
        report = json.loads(result.stdout.splitlines()[-1])
        yield Run(server, report, result.stderr, database, lora_dir)
    finally:
        assert server.terminate() == 0


def _rows(database: Path, table: str) -> list[sqlite3.Row]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return list(connection.execute(f'SELECT * FROM "{table}"'))


def _vector(stored: str) -> list[float]:
    """A vector as superduper-sql stores it: base64 of little-endian float32s."""
    raw = base64.b64decode(stored)
    return list(memoryview(raw).cast("f"))


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_rows_are_in_the_table(run: Run) -> None:
    rows = _rows(run.database, "faq")
    assert len(run.report["ids"]) == 10 == len(set(run.report["ids"]))
    assert sorted(r["id"] for r in rows) == sorted(run.report["ids"])
    assert all(r["question"] and r["answer"] for r in rows)


def test_listener_answers_every_row(run: Run) -> None:
    """Every row has an answer from the chat model, the two inserted after the Listener was
    applied too (the Listener ran as they arrived)."""
    column = run.report["answer_column"]
    outputs = {r["_source"]: r[column] for r in _rows(run.database, column)}
    assert sorted(outputs) == sorted(run.report["ids"])
    assert all(isinstance(answer, str) and answer for answer in outputs.values())
    assert outputs == run.report["answers"]


def test_vectors_have_the_embedding_models_size(run: Run) -> None:
    column = run.report["vector_column"]
    vectors = {r["_source"]: _vector(r[column]) for r in _rows(run.database, column)}
    assert sorted(vectors) == sorted(run.report["ids"])
    for vector in vectors.values():
        assert len(vector) == DIMENSIONS
        assert all(math.isfinite(x) for x in vector) and any(vector)
    assert set(run.report["vector_sizes"].values()) == {DIMENSIONS}


def test_similarity_query_returns_the_nearest_rows_ranked(run: Run) -> None:
    """The rows the vector index returns are the table's TOP_K nearest to the query by cosine
    over the stored vectors and the server's embedding of the query, in that order."""
    column = run.report["vector_column"]
    vectors = {r["_source"]: _vector(r[column]) for r in _rows(run.database, column)}
    response = httpx.post(f"{run.server.rest_url}/v1/embeddings", timeout=60,
                          json={"model": EMBEDDING_MODEL, "input": run.report["query"]})
    response.raise_for_status()
    query = response.json()["data"][0]["embedding"]
    similarity = {i: _cosine(vector, query) for i, vector in vectors.items()}
    nearest = [r["id"] for r in run.report["nearest"]]
    assert len(nearest) == TOP_K == len(set(nearest))
    # best first, and none left out nearer (within float32 noise between two computations)
    for better, worse in itertools.pairwise(nearest):
        assert similarity[better] >= similarity[worse] - TOLERANCE
    others = [similarity[i] for i in similarity if i not in nearest]
    assert min(similarity[i] for i in nearest) >= max(others) - TOLERANCE
    for row in run.report["nearest"]:  # superduper's scores are those cosines
        assert abs(row["score"] - similarity[row["id"]]) <= TOLERANCE
    questions = {r["id"]: r["question"] for r in _rows(run.database, "faq")}
    assert [r["question"] for r in run.report["nearest"]] == [questions[i] for i in nearest]


def test_adapter_trained_from_the_rows_is_served(run: Run) -> None:
    """The trainer got the table's rows from superduper's query (on its standard input, no
    file), wrote a PEFT adapter into the server's folder, and the server lists it and answers
    with it, through superduper's model class and directly."""
    assert f"on {len(run.report['ids'])} examples from standard input" in run.stderr
    folder = run.lora_dir / ADAPTER
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in folder.iterdir()}
    assert isinstance(run.report["adapter_answer"], str) and run.report["adapter_answer"]
    models = httpx.get(f"{run.server.rest_url}/v1/models", timeout=30).json()
    assert ADAPTER in {m["id"] for m in models["data"]}
    answer = httpx.post(f"{run.server.rest_url}/v1/chat/completions", timeout=120, json={
        "model": ADAPTER, "max_tokens": TOKENS, "min_tokens": TOKENS, "ignore_eos": True,
        "messages": [{"role": "user", "content": "Where do LoRA adapters go?"}]})
    answer.raise_for_status()
    assert answer.json()["model"] == ADAPTER
    assert answer.json()["usage"]["completion_tokens"] == TOKENS
