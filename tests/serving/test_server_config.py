"""config.json as OVMS reads it: mediapipe_config_list, graphs in model_config_list, paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovserve.errors import GraphConfigError
from ovserve.serving.server_config import (
    GraphEntry,
    ModelEntry,
    VersionPolicy,
    load_server_config,
    load_subconfig,
    single_graph_entry,
)


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
    entries = {e.name: e for e in load_server_config(config) if isinstance(e, GraphEntry)}
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
    assert isinstance(entry, GraphEntry)
    assert entry.name == "python_model"
    assert entry.graph_path == Path("/workspace/graph.pbtxt")


def test_every_problem_is_listed(tmp_path: Path) -> None:
    config = write(tmp_path, {
        "model_config_list": [{"config": {"name": "resnet", "base_path": "models/resnet",
                                          "model_version_policy": {"newest": {}}}}],
        "mediapipe_config_list": [{"name": "a"}, {"name": "a"}, {"base_path": "x"}, 7],
    })
    with pytest.raises(GraphConfigError) as info:
        load_server_config(config)
    problems = info.value.problems
    assert any("model_config_list[0] (resnet): 'model_version_policy' must be one of" in p
               for p in problems)
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


def test_plain_models_with_their_keys(tmp_path: Path) -> None:
    config = write(tmp_path, {"model_config_list": [
        {"config": {"name": "plain", "base_path": "models/plain"}},
        {"config": {"name": "tuned", "base_path": "/abs/tuned", "target_device": "CPU",
                    "model_version_policy": {"specific": {"versions": [3, 1]}},
                    "plugin_config": '{"PERFORMANCE_HINT": "THROUGHPUT"}', "nireq": "4",
                    "batch_size": "auto", "shape": {"a": "(1,3)", "b": [2, 3]},
                    "layout": "NHWC:NCHW"}},
        {"config": {"name": "latest", "base_path": "m", "shape": "auto",
                    "model_version_policy": {"latest": {"num_versions": 2}}}},
        {"config": {"name": "all", "base_path": "m", "model_version_policy": '{"all": {}}'}},
    ]})
    entries = {e.name: e for e in load_server_config(config)}
    plain, tuned = entries["plain"], entries["tuned"]
    assert isinstance(plain, ModelEntry) and isinstance(tuned, ModelEntry)
    assert plain.base_path == tmp_path / "models/plain"
    assert (plain.policy, plain.device, plain.nireq, plain.shape) == (VersionPolicy(), "CPU", 0,
                                                                     ())
    assert tuned.policy == VersionPolicy("specific", versions=(1, 3))
    assert dict(tuned.plugin_config) == {"PERFORMANCE_HINT": "THROUGHPUT"}
    assert (tuned.nireq, tuned.batch_size) == (4, "auto")
    assert tuned.shape == (("a", "(1,3)"), ("b", "(2,3)"))
    assert tuned.unsupported == ("layout",)  # refused when the model loads, naming the key
    latest = entries["latest"]
    assert isinstance(latest, ModelEntry)
    assert latest.shape == (("", "auto"),)
    assert latest.policy.choose([1, 2, 3, 7]) == [3, 7]
    assert VersionPolicy("all").choose([2, 1]) == [1, 2]
    assert tuned.policy.choose([1, 2]) == [1]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("model_version_policy", {"latest": {"num_versions": 0}}, "'num_versions' must be"),
    ("model_version_policy", {"specific": {"versions": []}}, "'specific' needs 'versions'"),
    ("model_version_policy", "{oops", "'model_version_policy' is not valid JSON"),
    ("nireq", -1, "'nireq' must be a non-negative integer"),
    ("batch_size", "big", "'batch_size' must be a non-negative integer or \"auto\""),
    ("shape", {"a": 5}, "shape of input 'a' must be a shape like"),
    ("plugin_config", [1], "'plugin_config' must be an object"),
])
def test_bad_model_keys_are_named(tmp_path: Path, key: str, value: object,
                                  message: str) -> None:
    config = write(tmp_path, {"model_config_list": [
        {"config": {"name": "m", "base_path": "m", key: value}}]})
    with pytest.raises(GraphConfigError) as info:
        load_server_config(config)
    assert any(p.startswith("model_config_list[0] (m): ") and message in p
               for p in info.value.problems), info.value.problems


def test_model_needs_a_base_path(tmp_path: Path) -> None:
    config = write(tmp_path, {"model_config_list": [{"config": {"name": "m"}}]})
    with pytest.raises(GraphConfigError, match=r"\(m\): 'base_path' .* is required"):
        load_server_config(config)


def test_subconfig_default_and_its_models(tmp_path: Path) -> None:
    graph = tmp_path / "g"
    graph.mkdir()
    (graph / "graph.pbtxt").write_text("")
    config = write(tmp_path, {"mediapipe_config_list": [{"name": "g"}, {"name": "h"}]})
    entries = {e.name: e for e in load_server_config(config) if isinstance(e, GraphEntry)}
    assert entries["g"].subconfig is None  # no subconfig.json: none, and no error
    (graph / "subconfig.json").write_text(json.dumps({"model_config_list": [
        {"config": {"name": "dummy", "base_path": "dummy"}}]}))
    entries = {e.name: e for e in load_server_config(config) if isinstance(e, GraphEntry)}
    sub = entries["g"].subconfig
    assert sub == graph / "subconfig.json"
    (model,) = load_subconfig(sub)
    assert (model.name, model.base_path, model.source) == ("dummy", graph / "dummy", sub)
    (graph / "subconfig.json").write_text(json.dumps({"mediapipe_config_list": []}))
    with pytest.raises(GraphConfigError, match="a subconfig holds only model_config_list"):
        load_subconfig(sub)
