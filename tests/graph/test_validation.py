"""The validation pass: every problem at once, each naming node and stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovserve.errors import GraphConfigError
from ovserve.graph.config import parse_graph_text
from ovserve.graph.spec import GraphSpec
from ovserve.graph.validation import build_graph
from ovserve.nodes import BUILTIN_CALCULATORS
from tests.graphs import SEED_GRAPH, python_node, write_handler

HANDLER = "def execute(self, inputs):\n    return inputs\n"
VALID = "class OvmsPythonModel:\n    def execute(self, inputs):\n        return []\n"


def build(text: str, base: Path) -> GraphSpec:
    return build_graph(parse_graph_text(text), name="g", path=None, base_path=base,
                       calculators=BUILTIN_CALCULATORS)


def problems(text: str, base: Path) -> list[str]:
    with pytest.raises(GraphConfigError) as info:
        build(text, base)
    return info.value.problems


def test_seed_graph_is_valid(tmp_path: Path) -> None:
    write_handler(tmp_path, VALID)
    spec = build(SEED_GRAPH.replace("/workspace/model.py", "model.py"), tmp_path)
    (node,) = spec.nodes
    assert node.back_edges == {"LOOPBACK:0"}
    assert node.sync_sets == [["INPUT:0"], ["LOOPBACK:0"]]
    assert spec.input_names == ["pre_prompt"] and spec.output_names == ["completion"]


def test_reports_every_problem_at_once(tmp_path: Path) -> None:
    write_handler(tmp_path, VALID)
    write_handler(tmp_path, "x = 1\n", "noclass.py")
    write_handler(tmp_path, "class OvmsPythonModel:\n    pass\n", "noexecute.py")
    text = (
        'input_stream: "OVMS_PY_TENSOR:in"\n'
        'output_stream: "OVMS_PY_TENSOR:out"\n'
        'output_stream: "OVMS_PY_TENSOR:orphan"\n'
        + python_node("a", "model.py", ["IN:in", "LOOPBACK:lb"], ["OUT:mid"])
        + python_node("b", "missing.py", ["IN:mid"], ["OUT:out"])
        + python_node("b", "noclass.py", ["IN:nowhere"], ["OUT:out"])
        + python_node("d", "noexecute.py", ["IN:in"], ["OUT:d", "LOOPBACK:lb2"])
        + 'node { name: "e" calculator: "FancyCalculator" input_stream: "IN:in" }\n'
    )
    found = problems(text, tmp_path)
    expected = [
        "node 'a': LOOPBACK input stream without a LOOPBACK output stream",
        "node 'a': LOOPBACK input stream 'lb' is not marked back_edge",
        "node 'a': input stream 'lb' is not produced by any node or graph input_stream",
        f"node 'b' #1: handler file {tmp_path / 'missing.py'} does not exist",
        "node 'b' #2: duplicate node name (also node #1)",
        "node 'b' #2: output stream 'out' already produced by node 'b' #1",
        f"node 'b' #2: handler {tmp_path / 'noclass.py'} defines no class OvmsPythonModel",
        "node 'b' #2: input stream 'nowhere' is not produced",
        "node 'd': LOOPBACK output stream without a LOOPBACK input stream",
        f"node 'd': handler {tmp_path / 'noexecute.py'}: OvmsPythonModel has no execute",
        "node 'e': unknown calculator 'FancyCalculator'",
        "graph output_stream 'orphan' is not produced by any node",
    ]
    for text_part in expected:
        assert any(text_part in p for p in found), f"missing {text_part!r} in {found}"


def test_cycle_without_back_edge(tmp_path: Path) -> None:
    write_handler(tmp_path, VALID)
    text = (
        'input_stream: "OVMS_PY_TENSOR:in"\noutput_stream: "OVMS_PY_TENSOR:out"\n'
        + python_node("a", "model.py", ["IN:in", "B:fromb"], ["OUT:out", "TOB:tob"])
        + python_node("b", "model.py", ["IN:tob"], ["OUT:fromb"])
    )
    (problem,) = problems(text, tmp_path)
    assert "cycle without a back_edge: a -[tob]-> b -[fromb]-> a" in problem


def test_unknown_tags_and_side_packets(tmp_path: Path) -> None:
    write_handler(tmp_path, VALID)
    text = (
        'input_stream: "WEIRD:in"\noutput_stream: "OVMS_PY_TENSOR:out"\n'
        + python_node("a", "model.py", ["IN:in"], ["OUT:out"]).replace(
            '"PYTHON_NODE_RESOURCES:py"', '"SETTINGS:cfg"')
    )
    found = problems(text, tmp_path)
    assert any("graph stream 'WEIRD:0:in': unknown tag 'WEIRD'" in p for p in found), found
    assert any("node 'a': input side packet 'SETTINGS:0:cfg': unknown tag 'SETTINGS'" in p
               for p in found), found
    assert any("node 'a': input side packet 'cfg' is not a graph input_side_packet" in p
               for p in found), found


def test_unknown_stream_handler_and_sync_set_port(tmp_path: Path) -> None:
    write_handler(tmp_path, VALID)
    node = python_node("a", "model.py", ["IN:in"], ["OUT:out"], handler_name="FastHandler")
    text = 'input_stream: "in"\noutput_stream: "out"\n' + node
    (problem,) = problems(text, tmp_path)
    assert "node 'a': unknown input_stream_handler 'FastHandler'" in problem
    sync = SEED_GRAPH.replace('tag_index: "LOOPBACK:0" }', 'tag_index: "LOOP:0" }')
    found = problems(sync.replace("/workspace/model.py", "model.py"), tmp_path)
    assert any("sync_set names input 'LOOP:0', which the node does not have" in p
               for p in found), found


@pytest.mark.parametrize("tag", ["OVMS_PY_TENSOR1", "OVTENSOR", "TENSOR_2", "TFTENSOR",
                                 "TFLITE_TENSOR", "IMAGE", ""])
def test_ovms_tensor_and_image_graph_tags_are_tensor_streams(tmp_path: Path, tag: str) -> None:
    """OVMS names a graph stream's packet type by its tag's prefix (mediapipe_utils.cpp)."""
    write_handler(tmp_path, VALID)
    ref = f"{tag}:in" if tag else "in"
    spec = build(f'input_stream: "{ref}"\noutput_stream: "OVTENSOR:out"\n'
                 + python_node("a", "model.py", ["IN:in"], ["OUT:out"]), tmp_path)
    assert spec.input_names == ["in"]


@pytest.mark.parametrize("ref", ["REQUEST:in", "RESPONSE:out"])
def test_kserve_message_streams_are_refused_clearly(tmp_path: Path, ref: str) -> None:
    write_handler(tmp_path, VALID)
    inputs, outputs = ("REQUEST:in", "out") if ref.startswith("REQUEST") else ("in", ref)
    found = problems(f'input_stream: "{inputs}"\noutput_stream: "{outputs}"\n'
                     + python_node("a", "model.py", ["IN:in"], ["OUT:out"]), tmp_path)
    assert any("whole KServe request or response" in p and "no ovserve node takes" in p
               for p in found), found
