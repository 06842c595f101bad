"""OVMS's inference calculators: OVMS's MediaPipe demos (graph, config and subconfig committed
unchanged under tests/fixtures/ovms_demos) with script-made stand-ins for their models, Python
nodes around a model, and graphs that are refused with the reason."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from ovserve.errors import GraphConfigError, InvalidInput, OvserveError
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.protocol.tensor import Tensor
from ovserve.serving.registry import Registry
from ovserve.serving.server_config import load_server_config
from tests.conftest import REPO, engine_registry, plugin_config
from tests.engine.model_files import add_two, classifier, save, unary
from tests.examples.ovms_demos import code_blocks, parse_docker_run, serve_and_run
from tests.graphs import write_handler
from tests.transport.server import start_server

DEMOS = REPO / "tests/fixtures/ovms_demos"


def multi_model_demo(tmp_path: Path) -> Path:
    """demos/mediapipe/multi_model_graph with its README's two model copies replaced by
    stand-ins of OVMS's test models dummy (b -> a, +1) and add_two_inputs_model."""
    demo = tmp_path / "multi_model_graph"
    shutil.copytree(DEMOS / "mediapipe/multi_model_graph", demo)
    save(unary("b", "a", [1, 10], 1.0), demo / "dummyAdd/dummy/1", "dummy")
    save(add_two([1, 10]), demo / "dummyAdd/add_two_inputs_model/1", "add")
    return demo


def test_multi_model_graph_demo_as_its_readme_says(tmp_path: Path) -> None:
    demo = multi_model_demo(tmp_path)
    readme = (demo / "README.md").read_text()
    (docker,) = [line for b in code_blocks(readme) for line in b.splitlines()
                 if line.startswith("docker run")]
    mounts, args = parse_docker_run(docker, demo)
    assert mounts == {"/mediapipe": demo}
    (client_block,) = [b for b in code_blocks(readme, "console")
                       if b.startswith("python mediapipe_multi_model_client.py")]
    command, *expected = client_block.strip().splitlines()
    result = serve_and_run(mounts, args, command, demo)
    log = (demo / "ovserve.log").read_text()
    assert result.returncode == 0, result.stderr + log
    assert result.stdout.strip().splitlines() == expected == [
        "Output:", "[[ 3.  5.  7.  9. 11. 13. 15. 17. 19. 21.]]"]
    assert "loading 2 model(s) from subconfig /mediapipe/dummyAdd/subconfig.json" in log


def test_image_classification_demo_graph(tmp_path: Path) -> None:
    demo = tmp_path / "image_classification"
    shutil.copytree(DEMOS / "mediapipe/image_classification", demo)
    # its README downloads resnet50-binary-0001 (input "0", output "1463") here
    xml = save(classifier("0", "1463"), demo / "resnetMediapipe/model/1",
               "resnet50-binary-0001")
    server = start_server(demo / "config.json")
    try:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        image = np.random.default_rng(0).uniform(0, 255, (1, 3, 224, 224)).astype(np.float32)
        graph_in = grpcclient.InferInput("in", list(image.shape), "FP32")
        graph_in.set_data_from_numpy(image)
        through_graph = client.infer("resnetMediapipe", [graph_in]).as_numpy("out")
        model_in = grpcclient.InferInput("0", list(image.shape), "FP32")
        model_in.set_data_from_numpy(image)
        direct = client.infer("resnet", [model_in]).as_numpy("1463")  # served by name too
        assert through_graph.shape == (1, 1000)
        np.testing.assert_array_equal(through_graph, direct)
        import openvino as ov

        expected = ov.Core().compile_model(str(xml), "CPU", plugin_config())(image)[0]
        np.testing.assert_allclose(through_graph, expected, rtol=1e-2, atol=1e-2)
        meta = client.get_model_metadata("resnet", as_json=True)
        assert meta["inputs"] == [{"name": "0", "datatype": "FP32",
                                   "shape": ["1", "3", "224", "224"]}]
    finally:
        server.terminate()


async def load(config: Path) -> Registry:
    registry = Registry(BUILTIN_CALCULATORS, engine_registry())
    await registry.load(load_server_config(config))
    return registry


async def test_wrong_tensors_through_a_graph_are_refused_naming_the_input(
        tmp_path: Path) -> None:
    registry = await load(multi_model_demo(tmp_path) / "config.json")
    try:
        graph = registry.get("dummyAdd")
        ok = np.ones((1, 10), np.float32)
        with pytest.raises(InvalidInput, match=r"dummy \(node .*\): input 'b' takes shape"):
            await graph.infer({"in1": Tensor("in1", np.ones((1, 5), np.float32)),
                               "in2": Tensor("in2", ok)})
        with pytest.raises(InvalidInput, match="input 'input2' takes FP32, not INT32"):
            await graph.infer({"in1": Tensor("in1", ok),
                               "in2": Tensor("in2", np.ones((1, 10), np.int32))})
        out = await graph.infer({"in1": Tensor("in1", ok), "in2": Tensor("in2", ok)})
        np.testing.assert_array_equal(np.asarray(out["out"]), np.full((1, 10), 3, np.float32))
    finally:
        await registry.unload()


PRE = """
import numpy as np
class OvmsPythonModel:
    def execute(self, inputs):
        x = np.frombuffer(bytes(inputs[0]), dtype=np.float32).reshape(1, 10)
        return [Tensor("x_py", x * 2)]
"""
POST = """
import numpy as np
class OvmsPythonModel:
    def execute(self, inputs):
        y = np.array(inputs[0], copy=False)
        return [Tensor("result", (y.sum(axis=1)).astype(np.float32))]
"""
PYTHON_AROUND_MODEL = """
input_stream: "OVMS_PY_TENSOR:x"
output_stream: "OVMS_PY_TENSOR:result"
node {
  name: "pre"
  calculator: "PythonExecutorCalculator"
  input_side_packet: "PYTHON_NODE_RESOURCES:py"
  input_stream: "IN:x"
  output_stream: "OUT:x_py"
  node_options: { [type.googleapis.com/mediapipe.PythonExecutorCalculatorOptions]: {
    handler_path: "pre.py" } }
}
node {
  name: "toOv"
  calculator: "PyTensorOvTensorConverterCalculator"
  input_stream: "OVMS_PY_TENSOR:x_py"
  output_stream: "OVTENSOR:x_ov"
}
node {
  calculator: "OpenVINOInferenceCalculator"
  input_side_packet: "SESSION:plus"
  input_stream: "OVTENSOR:x_ov"
  output_stream: "OVTENSOR:y_ov"
  options { [mediapipe.OpenVINOInferenceCalculatorOptions.ext] {
    tag_to_input_tensor_names { key: "OVTENSOR" value: "x" }
    tag_to_output_tensor_names { key: "OVTENSOR" value: "x_plus" } } }
}
node {
  calculator: "OpenVINOModelServerSessionCalculator"
  output_side_packet: "SESSION:plus"
  node_options: { [type.googleapis.com/mediapipe.OpenVINOModelServerSessionCalculatorOptions]: {
    servable_name: "plus" servable_version: "%s" } }
}
node {
  name: "toPy"
  calculator: "PyTensorOvTensorConverterCalculator"
  input_stream: "OVTENSOR:y_ov"
  output_stream: "OVMS_PY_TENSOR:y_py"
  node_options: { [type.googleapis.com/mediapipe.PyTensorOvTensorConverterCalculatorOptions]: {
    tag_to_output_tensor_names { key: "OVMS_PY_TENSOR" value: "y_named" } } }
}
node {
  name: "post"
  calculator: "PythonExecutorCalculator"
  input_side_packet: "PYTHON_NODE_RESOURCES:py"
  input_stream: "IN:y_py"
  output_stream: "OUT:result"
  node_options: { [type.googleapis.com/mediapipe.PythonExecutorCalculatorOptions]: {
    handler_path: "post.py" } }
}
"""


def python_around_model(root: Path, version: str = "2") -> Path:
    """A graph: Python node -> converter -> model (main config's ``plus``, a version chosen;
    the session node after the inference node) -> converter -> Python node."""
    for v in (1, 2):
        save(unary("x", "x_plus", [1, 10], float(v)), root / "plus" / str(v))
    graph = root / "graph"
    write_handler(graph, PRE, "pre.py")
    write_handler(graph, POST, "post.py")
    (graph / "graph.pbtxt").write_text(PYTHON_AROUND_MODEL % version)
    config = root / "config.json"
    config.write_text(json.dumps({
        "model_config_list": [{"config": {"name": "plus", "base_path": "plus",
                                          "model_version_policy": {"all": {}}}}],
        "mediapipe_config_list": [{"name": "graph"}]}))
    return config


@pytest.mark.parametrize(("version", "add"), [("1", 1.0), ("2", 2.0), ("", 2.0)])
async def test_python_nodes_around_a_model(tmp_path: Path, version: str, add: float) -> None:
    registry = await load(python_around_model(tmp_path, version))
    try:
        assert {n: s.error for n, s in registry.states.items()} == {"plus": None, "graph": None}
        x = np.arange(10, dtype=np.float32).reshape(1, 10)
        out = await registry.get("graph").infer({"x": Tensor("x", x)})
        np.testing.assert_allclose(np.asarray(out["result"]), [(x * 2 + add).sum()], rtol=1e-3)
    finally:
        await registry.unload()


@pytest.mark.parametrize(("old", "new", "problem"), [
    ('servable_name: "plus" ', "", "options need a servable_name"),
    ('servable_version: "2"', 'servable_version: "two"', "servable_version 'two' is not"),
    ('servable_name: "plus"', 'servable_name: "plus" service_url: "x:1"',
     "service_url is not supported"),
    ('output_side_packet: "SESSION:plus"', 'output_side_packet: "MODEL:plus"',
     "needs exactly one output_side_packet SESSION:<name>"),
    ('key: "OVTENSOR" value: "x" }', 'key: "OTHER" value: "x" }',
     "tag_to_input_tensor_names names tag 'OTHER', which no input stream"),
    ('output_stream: "OVTENSOR:y_ov"\n  options', 'output_stream: "OVTENSORS:y_ov"\n  options',
     "vector streams"),
    ('output_stream: "OVTENSOR:x_ov"', 'output_stream: "TENSOR:x_ov"',
     "needs one input and one output stream"),
    ('tag_to_output_tensor_names { key: "OVMS_PY_TENSOR" value: "y_named" }', "",
     "needs tag_to_output_tensor_names"),
])
async def test_graphs_refused_with_the_reason(tmp_path: Path, old: str, new: str,
                                              problem: str) -> None:
    config = python_around_model(tmp_path)
    graph = tmp_path / "graph" / "graph.pbtxt"
    text = graph.read_text()
    assert old in text
    graph.write_text(text.replace(old, new, 1))
    registry = await load(config)
    try:
        error = registry.states["graph"].error
        assert error is not None and problem in error, error
    finally:
        await registry.unload()


@pytest.mark.parametrize(("old", "new", "problem"), [
    ('servable_name: "plus"', 'servable_name: "minus"', "no model 'minus' is loaded"),
    ('servable_version: "2"', 'servable_version: "5"', "has no version 5 loaded"),
    ('value: "x" }', 'value: "nope" }',
     "input stream OVTENSOR:x_ov names tensor 'nope', which model plus does not have"),
])
async def test_models_a_graph_cannot_use_are_load_errors(tmp_path: Path, old: str, new: str,
                                                         problem: str) -> None:
    config = python_around_model(tmp_path)
    graph = tmp_path / "graph" / "graph.pbtxt"
    graph.write_text(graph.read_text().replace(old, new, 1))
    registry = await load(config)
    try:
        error = registry.states["graph"].error
        assert error is not None and problem in error, error
        assert registry.states["plus"].error is None  # the model itself still serves
    finally:
        await registry.unload()


async def test_a_bad_subconfig_makes_its_graph_unavailable(tmp_path: Path) -> None:
    demo = multi_model_demo(tmp_path)
    (demo / "dummyAdd/subconfig.json").write_text(textwrap.dedent("""\
        {"model_config_list": [{"config": {"name": "dummy"}}]}"""))
    registry = await load(demo / "config.json")
    try:
        error = registry.states["dummyAdd"].error
        assert error is not None and "'base_path' (the model's folder) is required" in error
        with pytest.raises(OvserveError, match="is not available"):
            registry.get("dummyAdd")
    finally:
        await registry.unload()


def test_options_given_as_calculator_options_parse() -> None:
    from ovserve.graph.config import parse_graph_text

    parsed = parse_graph_text(PYTHON_AROUND_MODEL % "1")
    assert parsed.node[2].options.ListFields()  # [mediapipe.X.ext] { ... } syntax
    with pytest.raises(GraphConfigError, match="tag_to_input_tensor_nams"):
        parse_graph_text(PYTHON_AROUND_MODEL.replace("tag_to_input_tensor_names",
                                                     "tag_to_input_tensor_nams") % "1")


async def test_ovserve_check_loads_models_before_graphs(tmp_path: Path) -> None:
    import io

    from ovserve.check import check_entries

    demo = multi_model_demo(tmp_path)
    out = io.StringIO()
    assert await check_entries(load_server_config(demo / "config.json"), out), out.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  dummy (subconfig of dummyAdd): ok (model ")
    assert lines[1].startswith("  add (subconfig of dummyAdd): ok (model ")
    assert lines[2].startswith("  dummyAdd: ok (") and lines[2].endswith("4 nodes)")
    shutil.rmtree(demo / "dummyAdd/add_two_inputs_model")
    out = io.StringIO()
    assert not await check_entries(load_server_config(demo / "config.json"), out)
    assert "add (subconfig of dummyAdd): cannot load: model add: base_path" in out.getvalue()
    assert "dummyAdd: cannot load: no model 'add' is loaded" in out.getvalue()
