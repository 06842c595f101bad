"""A server for the chat layer's tests: the built-in model as ``make serve`` names it (its
own graph) and as ``thinker``, a graph of the same model with OVMS's parser fields
(reasoning_parser qwen3, tool_parser hermes3, enable_tool_guided_generation), and as
``harmony``, with tool_parser gptoss (its markers forced as text by a regex in the tests)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO
from tests.transport.server import Server, start_server

MODEL = "smollm2-135m-instruct"
THINKER = "thinker"
HARMONY = "harmony"
PARSERS = ('tool_parser: "hermes3", reasoning_parser: "qwen3", '
           "enable_tool_guided_generation: true,")


def write_config(root: Path) -> Path:
    graph = (REPO / "graphs/llm/graph.pbtxt").read_text().replace(
        "../../models/smollm2-135m-instruct", str(REPO / "models/smollm2-135m-instruct"))
    for name, text in ((MODEL, graph), (THINKER, graph.replace(
            'device: "CPU",', f'device: "CPU", {PARSERS}')), (HARMONY, graph.replace(
            'device: "CPU",', 'device: "CPU", tool_parser: "gptoss",'))):
        (root / name).mkdir()
        (root / name / "graph.pbtxt").write_text(text)
    assert PARSERS in (root / THINKER / "graph.pbtxt").read_text()
    config = root / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": MODEL, "base_path": MODEL}, {"name": THINKER, "base_path": THINKER},
        {"name": HARMONY, "base_path": HARMONY}]}))
    return config


def chat_server(root: Path, *extra: str) -> Iterator[Server]:
    server = start_server(write_config(root), *extra)
    yield server
    assert server.terminate() == 0
