"""Parse MediaPipe ``.pbtxt`` graphs with protobuf's own text_format.

The ``.proto`` subset lives in ``ovserve/graph/proto``; importing its generated modules registers
the messages and the handler-option extensions, so ``node_options`` given as
``[type.googleapis.com / mediapipe.PythonExecutorCalculatorOptions]`` and
``[mediapipe.SyncSetInputStreamHandlerOptions.ext]`` parse as in MediaPipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pool, text_format
from google.protobuf.message import Message

from ovserve.errors import GraphConfigError
from ovserve.graph.proto import (  # noqa: F401  (registers extensions and Any types)
    calculator_pb2,
    embeddings_calculator_pb2,
    llm_calculator_pb2,
    openvinoinferencecalculator_pb2,
    openvinomodelserversessioncalculator_pb2,
    pytensor_ovtensor_converter_calculator_pb2,
    python_executor_pb2,
    retriever_calculator_pb2,
    stream_handlers_pb2,
)

GraphConfig = calculator_pb2.CalculatorGraphConfig
NodeConfig = calculator_pb2.CalculatorGraphConfig.Node


def parse_graph_text(text: str, source: str = "<graph>") -> calculator_pb2.CalculatorGraphConfig:
    """Parse graph text; syntax errors name ``source``, the line and the column."""
    graph = calculator_pb2.CalculatorGraphConfig()
    try:
        text_format.Parse(text, graph, descriptor_pool=descriptor_pool.Default())
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        where = f"{source}:{line}:{column}" if line else source
        message = str(exc)
        prefix = f"{line}:{column} : "
        if message.startswith(prefix):
            message = message[len(prefix):]
        raise GraphConfigError(f"{where}: {message}") from exc
    return graph


def parse_graph_file(path: Path) -> calculator_pb2.CalculatorGraphConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GraphConfigError(f"cannot read graph {path}: {exc.strerror or exc}") from exc
    return parse_graph_text(text, str(path))


@dataclass(frozen=True)
class StreamRef:
    """``name``, ``TAG:name`` or ``TAG:index:name``: a node port bound to a graph stream."""

    tag: str
    index: int
    name: str

    @property
    def port(self) -> str:
        """``TAG:index`` as MediaPipe writes it in ``tag_index`` fields."""
        return f"{self.tag}:{self.index}"

    def __str__(self) -> str:
        return f"{self.tag}:{self.index}:{self.name}" if self.tag else self.name


def parse_stream_ref(text: str) -> StreamRef:
    """Parse a stream or side-packet reference; raise ``ValueError`` with the reason."""
    parts = text.split(":")
    if len(parts) == 1:
        tag, index, name = "", "0", parts[0]
    elif len(parts) == 2:
        tag, index, name = parts[0], "0", parts[1]
    elif len(parts) == 3:
        tag, index, name = parts
    else:
        raise ValueError(f"{text!r} is not NAME, TAG:NAME or TAG:INDEX:NAME")
    if not name or not name.replace("_", "a").isalnum():
        raise ValueError(f"{text!r}: stream name {name!r} must be letters, digits and _")
    if tag and not tag.replace("_", "A").isalnum():
        raise ValueError(f"{text!r}: tag {tag!r} must be letters, digits and _")
    if not index.isdigit():
        raise ValueError(f"{text!r}: index {index!r} must be a non-negative integer")
    return StreamRef(tag, int(index), name)


def parse_tag_index(text: str) -> tuple[str, int]:
    """``TAG``, ``TAG:index`` (as in ``tag_index`` fields) -> (tag, index)."""
    tag, _, index = text.partition(":")
    if index and not index.isdigit():
        raise ValueError(f"{text!r}: index {index!r} must be a non-negative integer")
    return tag, int(index or 0)


def node_options(node: NodeConfig, message_type: type[Message]) -> Message | None:
    """The node's ``node_options`` entry of ``message_type``, unpacked, or None."""
    for option in node.node_options:
        if option.Is(message_type.DESCRIPTOR):  # type: ignore[arg-type]
            unpacked = message_type()
            option.Unpack(unpacked)
            return unpacked
    return None


@dataclass
class NodeLabel:
    """How errors refer to a node: its name, else calculator and position."""

    index: int
    node: NodeConfig = field(repr=False)

    def __str__(self) -> str:
        if self.node.name:
            return f"'{self.node.name}'"
        return f"#{self.index} ({self.node.calculator or 'no calculator'})"
