"""What the retriever node's options tell others: the embedding model a RAG graph queries
with, which scripts/ingest.py embeds the store with unless told otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ovserve.nodes.retriever import embedding_model_of
from tests.conftest import EMBEDDING_MODEL_DIR, REPO

GRAPH = '''input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_REQUEST_PAYLOAD:output"
node {
  calculator: "RetrieverCalculator"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  output_stream: "HTTP_REQUEST_PAYLOAD:output"
  node_options: {
    [type.googleapis.com / mediapipe.RetrieverCalculatorOptions]: {
      embedding_models_path: "%s"
    }
  }
}
'''


def test_the_shipped_rag_graphs_name_the_built_in_model() -> None:
    for graph in ("rag", "retriever"):
        assert embedding_model_of(REPO / "graphs" / graph / "graph.pbtxt") == EMBEDDING_MODEL_DIR


def test_a_relative_path_is_the_graphs_folders(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "graph.pbtxt").write_text(GRAPH % "../models/tuned")
    assert embedding_model_of(tmp_path / "g" / "graph.pbtxt") == tmp_path / "models" / "tuned"
    (tmp_path / "g" / "graph.pbtxt").write_text(
        (REPO / "graphs" / "llm" / "graph.pbtxt").read_text())
    assert embedding_model_of(tmp_path / "g" / "graph.pbtxt") is None


def test_ingest_embeds_with_the_graphs_model(tmp_path: Path) -> None:
    model = tmp_path / "tuned"
    model.symlink_to(EMBEDDING_MODEL_DIR, target_is_directory=True)
    graph = tmp_path / "graph.pbtxt"
    graph.write_text(GRAPH % model)
    (tmp_path / "doc.md").write_text("# Title\n\nOne short paragraph about serving.\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/ingest.py"), "--graph", str(graph),
         "--docs", str(tmp_path / "doc.md"), "--store", str(tmp_path / "chroma")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"from {model}" in result.stderr, result.stderr[-2000:]
