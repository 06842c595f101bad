"""Parsing .pbtxt graphs with protobuf text_format."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovserve.errors import GraphConfigError
from ovserve.graph.config import node_options, parse_graph_file, parse_graph_text, parse_stream_ref
from ovserve.graph.proto.python_executor_pb2 import PythonExecutorCalculatorOptions
from ovserve.graph.proto.stream_handlers_pb2 import SyncSetInputStreamHandlerOptions
from tests.graphs import SEED_GRAPH


def test_seed_graph_parses_as_written() -> None:
    graph = parse_graph_text(SEED_GRAPH)
    assert list(graph.input_stream) == ["OVMS_PY_TENSOR:pre_prompt"]
    assert list(graph.output_stream) == ["OVMS_PY_TENSOR_1:completion"]
    (node,) = graph.node
    assert node.calculator == "PythonExecutorCalculator"
    assert [(i.tag_index, i.back_edge) for i in node.input_stream_info] == [("LOOPBACK:0", True)]
    handler = node.input_stream_handler
    assert handler.input_stream_handler == "SyncSetInputStreamHandler"
    sync = handler.options.Extensions[SyncSetInputStreamHandlerOptions.ext]
    assert [list(s.tag_index) for s in sync.sync_set] == [["LOOPBACK:0"]]
    options = node_options(node, PythonExecutorCalculatorOptions)
    assert isinstance(options, PythonExecutorCalculatorOptions)
    assert options.handler_path == "/workspace/model.py"


def test_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "graph.pbtxt"
    path.write_text('input_stream: "a"\nnode {\n  calculator: "X"\n  colour: 3\n}\n')
    with pytest.raises(GraphConfigError) as info:
        parse_graph_file(path)
    assert str(info.value).startswith(f"{path}:4:3: ")
    assert "no field named \"colour\"" in str(info.value)


def test_unknown_any_type_is_an_error() -> None:
    text = 'node { node_options: { [type.googleapis.com/mediapipe.NoSuchOptions]: {} } }'
    with pytest.raises(GraphConfigError, match="NoSuchOptions"):
        parse_graph_text(text, "g.pbtxt")


def test_missing_graph_file(tmp_path: Path) -> None:
    with pytest.raises(GraphConfigError, match="cannot read graph"):
        parse_graph_file(tmp_path / "nope.pbtxt")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("name", ("", 0, "name")), ("TAG:name", ("TAG", 0, "name")),
     ("TAG:2:name", ("TAG", 2, "name"))],
)
def test_stream_refs(text: str, expected: tuple[str, int, str]) -> None:
    ref = parse_stream_ref(text)
    assert (ref.tag, ref.index, ref.name) == expected


@pytest.mark.parametrize("text", ["", "a:b:c:d", "TAG:x:name", "TAG:na-me"])
def test_bad_stream_refs(text: str) -> None:
    with pytest.raises(ValueError):
        parse_stream_ref(text)
