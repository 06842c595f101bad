"""ModelServable: version folders and policies, a model file as base_path, ONNX, versions by
request, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovserve.engine.registry import EngineRegistry
from ovserve.errors import GraphConfigError, ServableNotFound, Unsupported
from ovserve.protocol.tensor import Tensor
from ovserve.serving.model import ModelServable, find_versions
from ovserve.serving.server_config import ModelEntry, VersionPolicy
from tests.engine.model_files import save, unary


def folders(root: Path, versions: list[int]) -> Path:
    for version in versions:
        save(unary("x", "y", [2], float(version)), root / str(version))
    return root


@pytest.mark.parametrize(("policy", "served"), [
    (VersionPolicy(), [3]),
    (VersionPolicy("latest", 2), [2, 3]),
    (VersionPolicy("all"), [1, 2, 3]),
    (VersionPolicy("specific", versions=(1, 3, 9)), [1, 3]),  # 9: not on disk, logged
])
def test_version_policies(tmp_path: Path, policy: VersionPolicy, served: list[int]) -> None:
    root = folders(tmp_path / "m", [1, 2, 3])
    (root / "0").mkdir()  # not a version: versions are positive integers
    (root / "notes").mkdir()
    found = find_versions(ModelEntry("m", root, policy))
    assert list(found) == served
    assert all(path.suffix == ".xml" for path in found.values())


def test_a_model_file_as_base_path_is_version_1(tmp_path: Path) -> None:
    path = save(unary("x", "y", [2], 1.0), tmp_path / "anywhere", "net")
    assert find_versions(ModelEntry("m", path)) == {1: path}


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: None, "base_path .* does not exist"),
    (lambda p: p.mkdir(), r"no version to serve .* found none"),
    (lambda p: (p / "1").mkdir(parents=True), r"no version to serve .* found none"),
    (lambda p: p.parent.joinpath("m.txt").write_text("x"), "is not a model file"),
])
def test_nothing_to_serve_is_a_load_error(tmp_path: Path, make: object, message: str) -> None:
    base = tmp_path / "m"
    make(base)  # type: ignore[operator]
    if (tmp_path / "m.txt").exists():
        base = tmp_path / "m.txt"
    with pytest.raises(GraphConfigError, match=message):
        find_versions(ModelEntry("m", base))


async def test_versions_by_request(tmp_path: Path) -> None:
    engines = EngineRegistry()
    model = await ModelServable.load(
        ModelEntry("m", folders(tmp_path / "m", [1, 2]), VersionPolicy("all")), engines)
    try:
        x = Tensor("x", np.zeros(2, np.float32))
        for version, added in ((None, 2.0), ("", 2.0), ("1", 1.0), ("2", 2.0)):
            out = await model.infer({"x": x}, version)
            np.testing.assert_array_equal(np.asarray(out["y"]), [added, added])
        for wrong in ("3", "one", "-1"):
            with pytest.raises(ServableNotFound, match=f"has no version '{wrong}'"):
                model.version(wrong)
        assert engines.model("graph", "m", 1) is model.versions[1]
        assert engines.model("graph", "m") is model.versions[2]
    finally:
        await model.unload()
    with pytest.raises(ServableNotFound, match="no model 'm' is loaded"):
        engines.model("graph", "m")


async def test_unsupported_keys_are_named(tmp_path: Path) -> None:
    entry = ModelEntry("m", folders(tmp_path / "m", [1]), unsupported=("layout", "mean"))
    with pytest.raises(Unsupported, match="does not support the key\\(s\\) 'layout', 'mean'"):
        await ModelServable.load(entry, EngineRegistry())


async def test_onnx_models_load_from_version_folders(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["z"])], "add",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3]),
         helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [None, 3])])
    folder = tmp_path / "m" / "1"
    folder.mkdir(parents=True)
    onnx.save(helper.make_model(graph), str(folder / "model.onnx"))
    model = await ModelServable.load(ModelEntry("m", tmp_path / "m"), EngineRegistry())
    try:
        assert [(i.name, i.shape) for i in model.inputs()] == [("x", (-1, 3)), ("y", (-1, 3))]
        one = np.ones((2, 3), np.float32)
        out = await model.infer({"x": Tensor("x", one), "y": Tensor("y", one)})
        np.testing.assert_array_equal(np.asarray(out["z"]), one * 2)
    finally:
        await model.unload()
