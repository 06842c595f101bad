"""Fine-tuning the built-in embedding model on a small corpus, on the CPU, for real: the folder
it writes is laid out like the stock one, a real ovserve server serves it (/v3/embeddings over
httpx, /v1/embeddings with the openai SDK) with vectors that differ from the stock model's, and
re-ingesting a store with it embeds every chunk again. How much better it retrieves is a
benchmark (benchmarks/retrieval_eval.py), not a verdict here."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from ovserve.rag.model_id import embedding_model_info
from ovserve.rag.store import StoreConfig, VectorStore
from ovserve.toolchain import provenance
from ovserve.toolchain.finetune_embeddings import TrainSettings, finetune
from tests.conftest import REPO
from tests.transport.server import Server, start_server

TOPICS = {
    "Sourdough bread": "A starter of flour and water ferments for days before it can raise a "
    "loaf. Feed it twice a day and keep it warm. Bake at a high heat in a covered pot.",
    "Bicycle maintenance": "Clean and oil the chain every few hundred kilometres. Check the "
    "brake pads for wear. Tyres lose pressure slowly and should be pumped weekly.",
    "Tide pools": "Rock pools left by the falling tide hold anemones, crabs and small fish. "
    "Step only on bare rock. Turn stones back over the way you found them.",
    "Tax returns": "Keep the receipts of the year in one folder. The deadline is at the end of "
    "January for online returns. Interest is charged on late payments.",
    "Night sky": "Jupiter is brighter than any star and does not twinkle. The Milky Way is "
    "only seen far from city lights. Let your eyes adapt for twenty minutes.",
    "Composting": "Mix green kitchen scraps with brown leaves and cardboard. Turn the heap "
    "every month so air reaches the middle. It is ready when it smells of earth.",
}
TEXTS = ["How do I look after a sourdough starter?", "When are tax returns due?",
         "Why does Jupiter not twinkle?"]
#: a few steps at a high rate: the small corpus is easy (its loss starts near 0.01), and the
#: model must move well beyond kernel noise in that time
SETTINGS = TrainSettings(epochs=3, batch_size=8, learning_rate=3e-4, max_length=64)


def corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for number, (title, text) in enumerate(TOPICS.items()):
        paragraphs = "\n\n".join(f"{sentence.strip()}. {text}"
                                 for sentence in text.split(". ")[:2])
        (folder / f"topic{number}.md").write_text(f"# Notes\n\n## {title}\n\n{paragraphs}\n")
    return folder


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """(the fine-tuned folder, its corpus, seconds it took)."""
    root = tmp_path_factory.mktemp("finetune")
    docs = corpus(root / "docs")
    started = time.monotonic()
    output = finetune(root / "tuned", [docs], questions=None, settings=SETTINGS)
    return output, docs, time.monotonic() - started


def test_finetune_writes_a_folder_like_the_stock_one_in_minutes(
        tuned: tuple[Path, Path, float], embedding_model_dir: Path) -> None:
    output, _, seconds = tuned
    assert seconds < 600, f"fine-tuning a six-document corpus took {seconds:.0f} s"
    stock = {p.name for p in embedding_model_dir.iterdir()}
    assert stock <= {p.name for p in output.iterdir()}
    assert (output / "graph.pbtxt").read_text() == (embedding_model_dir / "graph.pbtxt"
                                                    ).read_text()
    record = provenance.read(output)
    assert record["kind"] == "embedding" and record["name"] == "tuned"
    assert record["source"] == "finetuned:builtin:all-minilm-l6-v2"
    training = json.loads((output / "training.json").read_text())
    assert training["steps"] >= 2 and training["pairs"] >= 12
    assert training["pairs_title"] >= len(TOPICS) and training["pairs_sentence"] >= 1
    assert not list(output.parent.glob(".tuned*"))  # nothing staged left behind


@pytest.fixture(scope="module")
def server(tuned: tuple[Path, Path, float], embedding_model_dir: Path) -> Iterator[Server]:
    """Both models as embedding servables, and a retrieval graph on the tuned model over a
    store the stock model built (ingested before the server holds it)."""
    output, docs, _ = tuned
    root = output.parent
    ingest(docs, root / "stock-store", embedding_model_dir)
    graph = (REPO / "graphs/retriever/graph.pbtxt").read_text()
    graph = graph.replace('"../../models/all-minilm-l6-v2"', f'"{output}"')
    graph = graph.replace('"../../data/chroma"', f'"{root / "stock-store"}"')
    (root / "retriever").mkdir()
    (root / "retriever" / "graph.pbtxt").write_text(graph)
    config = root / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "stock", "base_path": str(embedding_model_dir)},
        {"name": "tuned", "base_path": str(output)},
        {"name": "retriever", "base_path": str(root / "retriever")}]}))
    server = start_server(config)
    yield server
    assert server.terminate() == 0


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    result: np.ndarray = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1)
                                            * np.linalg.norm(b, axis=-1))
    return result


def test_the_served_model_differs_from_the_stock_one(server: Server) -> None:
    response = httpx.post(f"{server.rest_url}/v3/embeddings", timeout=60,
                          json={"model": "tuned", "input": TEXTS})
    assert response.status_code == 200, response.text
    tuned = np.array([row["embedding"] for row in response.json()["data"]], np.float64)
    with openai.OpenAI(base_url=f"{server.rest_url}/v1", api_key="unused") as client:
        stock = np.array([d.embedding for d in client.embeddings.create(
            model="stock", input=TEXTS).data], np.float64)
        stock_again = np.array([d.embedding for d in client.embeddings.create(
            model="stock", input=TEXTS[::-1]).data], np.float64)[::-1]
        tuned_again = np.array([d.embedding for d in client.embeddings.create(
            model="tuned", input=TEXTS[::-1]).data], np.float64)[::-1]
    assert tuned.shape == stock.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(tuned, axis=1), 1, atol=1e-3)
    # one model asked twice (another batch order) agrees to kernel noise; the two models
    # differ by far more than that on every text
    noise = max(1 - cosines(stock, stock_again).min(), 1 - cosines(tuned, tuned_again).min())
    assert noise < 1e-3
    assert (1 - cosines(tuned, stock)).min() > max(10 * noise, 2e-3)


def ingest(docs: Path, store: Path, model: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/ingest.py"), "--docs", str(docs), "--store",
         str(store), "--embedding_model", str(model)],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_reingesting_with_the_tuned_model_reembeds_the_store(
        tuned: tuple[Path, Path, float], embedding_model_dir: Path, tmp_path: Path) -> None:
    output, docs, _ = tuned
    store = tmp_path / "store"
    stock_id = embedding_model_info(embedding_model_dir).id
    tuned_id = embedding_model_info(output).id
    assert stock_id != tuned_id and tuned_id.startswith("tuned@")
    first = ingest(docs, store, embedding_model_dir)
    chunks = first["chunks_in_store"]
    assert first["embedding_model"] == stock_id and first["added"] == chunks
    assert first["reembedded"] == 0
    switched = ingest(docs, store, output)
    assert switched["embedding_model"] == tuned_id
    assert switched["reembedded"] == chunks and switched["added"] == 0
    again = ingest(docs, store, output)
    assert again["reembedded"] == 0 and again["added"] == 0 and again["unchanged"] == chunks
    assert VectorStore(StoreConfig(path=store)).embedding_models() == {tuned_id: chunks}


def test_an_upload_with_the_tuned_model_reembeds_the_stock_store(
        server: Server, tuned: tuple[Path, Path, float], embedding_model_dir: Path) -> None:
    stock_id = embedding_model_info(embedding_model_dir).id
    tuned_id = embedding_model_info(tuned[0]).id
    url = f"{server.rest_url}/v1/rag/retriever/documents"
    before = httpx.get(url, timeout=60).json()
    chunks = before["chunks"]
    assert before["embedding_model"]["id"] == tuned_id and before["reranker"] is None
    assert before["embedding_model"]["source"] == "finetuned:builtin:all-minilm-l6-v2"
    assert before["embedded_with"] == {stock_id: chunks} and chunks >= len(TOPICS)
    added = httpx.put(f"{url}/owls.md", timeout=60,
                      content=b"## Owls\n\nOwls hunt at night and swallow mice whole.")
    assert added.status_code == 200, added.text
    assert added.json()["reembedded"] == chunks and added.json()["added"] == 1
    after = httpx.get(url, timeout=60).json()
    assert after["embedded_with"] == {tuned_id: chunks + 1}
