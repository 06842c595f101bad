"""Helpers that write small graphs and handlers for tests into a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ovserve.serving.server_config import GraphEntry

# The seed graph exactly as contracts.md section 2 writes it (handler path made relative).
SEED_GRAPH = """\
input_stream: "OVMS_PY_TENSOR:pre_prompt"
output_stream: "OVMS_PY_TENSOR_1:completion"
node {
  name: "pythonNode"
  calculator: "PythonExecutorCalculator"
  input_side_packet: "PYTHON_NODE_RESOURCES:py"
  input_stream: "LOOPBACK:loopback"
  input_stream: "INPUT:pre_prompt"
  input_stream_info: { tag_index: 'LOOPBACK:0', back_edge: true }
  input_stream_handler {
    input_stream_handler: "SyncSetInputStreamHandler",
    options { [mediapipe.SyncSetInputStreamHandlerOptions.ext] { sync_set { tag_index: "LOOPBACK:0" } } }
  }
  output_stream: "LOOPBACK:loopback"
  output_stream: "OUTPUT:completion"
  node_options: {
    [type.googleapis.com / mediapipe.PythonExecutorCalculatorOptions]: { handler_path: "/workspace/model.py" }
  }
}
"""


def write_handler(folder: Path, code: str, name: str = "model.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("from pyovms import Tensor\n" + textwrap.dedent(code))
    return path


def python_node(
    name: str,
    handler: str,
    inputs: list[str],
    outputs: list[str],
    *,
    loopback: bool = False,
    handler_name: str | None = None,
) -> str:
    """A PythonExecutorCalculator node block; ``inputs``/``outputs`` are TAG:name refs."""
    lines = [f'  name: "{name}"', '  calculator: "PythonExecutorCalculator"',
             '  input_side_packet: "PYTHON_NODE_RESOURCES:py"']
    if loopback:
        lines.append('  input_stream: "LOOPBACK:loopback"')
    lines += [f'  input_stream: "{ref}"' for ref in inputs]
    if loopback:
        lines += [
            "  input_stream_info: { tag_index: 'LOOPBACK:0', back_edge: true }",
            '  input_stream_handler { input_stream_handler: "SyncSetInputStreamHandler", '
            'options { [mediapipe.SyncSetInputStreamHandlerOptions.ext] { sync_set '
            '{ tag_index: "LOOPBACK:0" } } } }',
            '  output_stream: "LOOPBACK:loopback"',
        ]
    elif handler_name:
        lines.append(f'  input_stream_handler {{ input_stream_handler: "{handler_name}" }}')
    lines += [f'  output_stream: "{ref}"' for ref in outputs]
    lines.append(
        "  node_options: { [type.googleapis.com/mediapipe.PythonExecutorCalculatorOptions]: "
        f'{{ handler_path: "{handler}" }} }}'
    )
    return "node {\n" + "\n".join(lines) + "\n}\n"


def write_graph(
    folder: Path, inputs: list[str], outputs: list[str], nodes: list[str], *, extra: str = ""
) -> GraphEntry:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(f'input_stream: "OVMS_PY_TENSOR:{n}"\n' for n in inputs)
    text += "".join(f'output_stream: "OVMS_PY_TENSOR:{n}"\n' for n in outputs)
    text += extra + "".join(nodes)
    (folder / "graph.pbtxt").write_text(text)
    return GraphEntry(name=folder.name, base_path=folder, graph_path=folder / "graph.pbtxt")


def single_node_graph(
    folder: Path, code: str, *, loopback: bool = False, inputs: tuple[str, ...] = ("text",),
    outputs: tuple[str, ...] = ("result",),
) -> GraphEntry:
    """One Python node reading ``inputs`` and writing ``outputs``."""
    write_handler(folder, code)
    node = python_node(
        "node", "model.py", [f"IN{i}:{n}" for i, n in enumerate(inputs)],
        [f"OUT{i}:{n}" for i, n in enumerate(outputs)], loopback=loopback,
    )
    return write_graph(folder, list(inputs), list(outputs), [node])
