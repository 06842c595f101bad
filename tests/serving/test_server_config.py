"""config.json as OVMS reads it: mediapipe_config_list, graphs in model_config_list, paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovserve.errors import GraphConfigError
from ovserve.serving.server_config import load_server_config, single_graph_entry


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "in_model_list").mkdir()
    (tmp_path / "in_model_list" / "graph.pbtxt").write_text("")
    config = write(tmp_path, {
        "model_config_list": [{"config": {"name": "in_model_list"}}],
        "mediapipe_config_list": [
            {"name": "plain"},
            {"name": "based", "base_path": "some/dir"},
            {"name": "graphed", "base_path": "/abs/base", "graph_path": "g/custom.pbtxt"},
            {"name": "absolute", "graph_path": "/srv/graph.pbtxt", "subconfig": "sub.json"},
        ],
    })
    entries = {e.name: e for e in load_server_config(config)}
    assert entries["plain"].base_path == tmp_path / "plain"
    assert entries["plain"].graph_path == tmp_path / "plain" / "graph.pbtxt"
    assert entries["based"].graph_path == tmp_path / "some/dir/graph.pbtxt"
    assert entries["graphed"].graph_path == Path("/abs/base/g/custom.pbtxt")
    assert entries["absolute"].graph_path == Path("/srv/graph.pbtxt")
    assert entries["absolute"].subconfig == tmp_path / "absolute" / "sub.json"
    assert entries["in_model_list"].graph_path == tmp_path / "in_model_list" / "graph.pbtxt"


def test_seed_config_shape(tmp_path: Path) -> None:
    config = write(tmp_path, {"model_config_list": [], "mediapipe_config_list": [
        {"name": "python_model", "graph_path": "/workspace/graph.pbtxt"}]})
    (entry,) = load_server_config(config)
    assert entry.name == "python_model"
    assert entry.graph_path == Path("/workspace/graph.pbtxt")


def test_every_problem_is_listed(tmp_path: Path) -> None:
    config = write(tmp_path, {
        "model_config_list": [{"config": {"name": "resnet", "base_path": "models/resnet"}}],
        "mediapipe_config_list": [{"name": "a"}, {"name": "a"}, {"base_path": "x"}, 7],
    })
    with pytest.raises(GraphConfigError) as info:
        load_server_config(config)
    problems = info.value.problems
    assert any("model_config_list[0] (resnet): a plain OpenVINO model" in p for p in problems)
    assert "servable name 'a' is used twice" in problems
    assert any("mediapipe_config_list[2]: 'name' is required" in p for p in problems)
    assert any("mediapipe_config_list[3]: expected an object, got int" in p for p in problems)


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    config = write(tmp_path, '{\n  "mediapipe_config_list": [\n    {"name": "a",}\n  ]\n}')
    with pytest.raises(GraphConfigError, match=rf"{config}:3:18: invalid JSON"):
        load_server_config(config)


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(GraphConfigError, match="cannot read config"):
        load_server_config(tmp_path / "nope.json")


def test_single_graph_without_config(tmp_path: Path) -> None:
    entry = single_graph_entry(tmp_path, "m")
    assert (entry.name, entry.graph_path) == ("m", tmp_path.resolve() / "graph.pbtxt")
