"""``Registry.apply`` (what a config reload calls) without a server: a graph's subconfig model
gets a new version and the graph follows it (not while it pins the old one); the status
document; a request that got a servable just before it was replaced goes to its successor."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np

from ovserve.engine.registry import EngineRegistry
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.protocol.tensor import Tensor
from ovserve.serving.model import ModelServable
from ovserve.serving.registry import Registry
from ovserve.serving.server_config import load_server_config
from tests.engine.model_files import save, unary
from tests.nodes.test_openvino_inference import multi_model_demo


def ones() -> dict[str, Tensor]:
    data = np.ones((1, 10), np.float32)
    return {"in1": Tensor("in1", data), "in2": Tensor("in2", data)}


async def test_a_subconfig_models_new_version_reloads_its_graph(tmp_path: Path) -> None:
    demo = multi_model_demo(tmp_path)
    config = demo / "config.json"
    registry = Registry(BUILTIN_CALCULATORS, EngineRegistry())
    await registry.load(load_server_config(config))
    try:
        first = registry.get("dummyAdd")
        out = await first.infer(ones())
        np.testing.assert_array_equal(np.asarray(out["out"]), np.full((1, 10), 3, np.float32))
        nothing = await registry.apply(load_server_config(config))
        assert not nothing.changed and not nothing.errors
        assert registry.get("dummyAdd") is first

        staging = demo / "dummyAdd" / "dummy" / ".new"
        save(unary("b", "a", [1, 10], 2.0), staging, "dummy")  # version 2: b + 2
        os.replace(staging, demo / "dummyAdd" / "dummy" / "2")
        # the graph's session nodes ask for version 1, which is no longer served: the graph
        # that is loaded goes on serving (on the version 1 it holds)
        applied = await registry.apply(load_server_config(config))
        assert applied.changed and len(applied.errors) == 1
        assert applied.errors[0].startswith("servable dummyAdd (error id ")
        assert registry.get("dummyAdd") is first
        out = await first.infer(ones())
        np.testing.assert_array_equal(np.asarray(out["out"]), np.full((1, 10), 3, np.float32))
        # the graph no longer pins a version: it loads again, on version 2
        path = demo / "dummyAdd" / "graph.pbtxt"
        path.write_text(path.read_text().replace('servable_version: "1"', ""))
        applied = await registry.apply(load_server_config(config))
        assert applied.changed and not applied.errors
        graph = registry.get("dummyAdd")
        assert graph is not first  # its session node now holds version 2
        out = await graph.infer(ones())
        np.testing.assert_array_equal(np.asarray(out["out"]), np.full((1, 10), 4, np.float32))
        # a caller that got the old graph just before the reload is served by the new one
        out = await first.infer(ones())
        np.testing.assert_array_equal(np.asarray(out["out"]), np.full((1, 10), 4, np.float32))
        dummy = registry.model("dummy")
        assert isinstance(dummy, ModelServable) and list(dummy.versions) == [2]
        deadline = asyncio.get_running_loop().time() + 60

        def versions() -> list[tuple[str, str]]:
            return [(v["version"], v["state"])
                    for v in registry.status()["dummy"]["model_version_status"]]

        while versions() != [("1", "END"), ("2", "AVAILABLE")]:  # version 1 drains, unloads
            assert asyncio.get_running_loop().time() < deadline, versions()
            await asyncio.sleep(0.01)
        assert not registry._outgoing
        status = registry.status()
        assert status["dummyAdd"]["model_version_status"][0]["state"] == "AVAILABLE"
        assert status["add"]["model_version_status"][0] == {
            "version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": "OK"}}
    finally:
        await registry.unload()
