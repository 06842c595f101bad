"""`ovserve check` accepts the seed graph syntax and rejects broken graphs, like nginx -t."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.graphs import SEED_GRAPH, python_node, write_graph, write_handler

OVSERVE = [sys.executable, "-m", "ovserve"]
HANDLER = """
class OvmsPythonModel:
    def initialize(self, kwargs):
        print("initialized", kwargs["node_name"])
    def execute(self, inputs):
        yield [Tensor("completion", b"x")]
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OVSERVE, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_seed_graph_passes(tmp_path: Path) -> None:
    model = write_handler(tmp_path / "python_model", HANDLER)
    (tmp_path / "python_model" / "graph.pbtxt").write_text(
        SEED_GRAPH.replace("/workspace/model.py", str(model)))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "python_model"}]}))
    result = run("check", "--config_path", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "python_model: ok" in result.stdout
    assert "initialized pythonNode" in result.stdout  # initialize really ran
    assert "configuration is ok" in result.stdout


def test_broken_graph_fails_with_node_and_stream(tmp_path: Path) -> None:
    write_handler(tmp_path / "broken", HANDLER)
    write_graph(tmp_path / "broken", ["in"], ["out"], [
        python_node("first", "model.py", ["IN:in"], ["OUT:mid"]),
        python_node("second", "model.py", ["IN:mid", "EXTRA:ghost"], ["OUT:mid"]),
    ])
    result = run("check", "--model_path", str(tmp_path / "broken"), "--model_name", "broken")
    assert result.returncode == 1
    assert "broken: 4 problem(s)" in result.stdout
    assert "node 'second': output stream 'mid' already produced by node 'first'" in result.stdout
    assert "node 'second': input stream 'ghost' is not produced" in result.stdout
    assert "graph output_stream 'out' is not produced by any node" in result.stdout
    assert "cycle without a back_edge: second -[mid]-> second" in result.stdout
    assert "configuration test failed" in result.stdout


def test_initialize_failure_fails_the_check(tmp_path: Path) -> None:
    write_handler(tmp_path / "m", """
class OvmsPythonModel:
    def initialize(self, kwargs):
        raise OSError("weights not found")
    def execute(self, inputs):
        return []
""")
    write_graph(tmp_path / "m", ["in"], ["out"],
                [python_node("n", "model.py", ["IN:in"], ["OUT:out"])])
    result = run("check", "--model_path", str(tmp_path / "m"), "--model_name", "m")
    assert result.returncode == 1
    assert "m: cannot load: node n: initialize raised OSError: weights not found" in result.stdout


def test_broken_config_is_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("{")
    result = run("check", "--config_path", str(config))
    assert result.returncode == 1
    assert f"{config}:1:2: invalid JSON" in result.stderr


def test_example_graph_in_the_repository_passes() -> None:
    from tests.conftest import REPO

    result = run("check", "--config_path", str(REPO / "graphs/python_echo/config.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "echo: ok" in result.stdout
