"""benchmarks/run.py on a model other than the built-in one: ovserve serves the folder through
graphs/llm's graph, llama.cpp runs the GGUF made beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.loadgen import MODEL_ID
from benchmarks.run import default_gguf, server_config, weights
from tests.conftest import REPO


def test_the_builtin_model_is_served_by_the_shipped_config(tmp_path: Path) -> None:
    assert server_config(REPO / "models" / MODEL_ID, tmp_path) == REPO / "servables/config.json"
    assert not list(tmp_path.iterdir())


def test_another_folder_is_served_by_the_llm_graph_pointed_at_it(tmp_path: Path) -> None:
    model = tmp_path / "models" / "tinyllama-1.1b-shaped-int8"
    config = server_config(model, tmp_path / "logs")
    entries = json.loads(config.read_text())["mediapipe_config_list"]
    assert entries == [
        {"name": "python_model", "base_path": str(REPO / "servables/servable_stream")},
        {"name": MODEL_ID, "base_path": str(tmp_path / "logs" / "llm")}]
    ours = (tmp_path / "logs" / "llm" / "graph.pbtxt").read_text().splitlines()
    shipped = (REPO / "graphs/llm/graph.pbtxt").read_text().splitlines()
    changed = [(a, b) for a, b in zip(shipped, ours, strict=True) if a != b]
    assert changed == [('      models_path: "../../models/smollm2-135m-instruct",',
                        f'      models_path: "{model}",')]


def test_a_relative_folder_is_pointed_at_absolutely(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model models/x`` (the README's form) is relative to where run.py runs, not to the
    graph written in the logs folder, which resolves its models_path from there."""
    monkeypatch.chdir(tmp_path)
    server_config(Path("models/tiny-int8"), tmp_path / "logs")
    graph = (tmp_path / "logs" / "llm" / "graph.pbtxt").read_text()
    assert f'models_path: "{tmp_path / "models" / "tiny-int8"}",' in graph


def test_the_gguf_made_beside_a_shaped_folder_is_the_default(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-int4"
    folder.mkdir()
    (folder / "ovserve_model.json").write_text(json.dumps(
        {"source": "shaped:tiny", "weight_format": "int4"}))
    assert weights(folder) == "int4"
    with pytest.raises(SystemExit, match="no GGUF"):
        default_gguf(folder)
    (tmp_path / "tiny.Q4_1.gguf").write_bytes(b"GGUF")
    assert default_gguf(folder) == tmp_path / "tiny.Q4_1.gguf"
