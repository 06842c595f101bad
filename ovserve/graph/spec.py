"""A validated graph: what the executor runs. Built by ``ovserve.graph.validation``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ovserve.graph.config import NodeConfig, StreamRef

DEFAULT_HANDLER = "DefaultInputStreamHandler"
IMMEDIATE_HANDLER = "ImmediateInputStreamHandler"
SYNC_SET_HANDLER = "SyncSetInputStreamHandler"
INPUT_HANDLERS = (DEFAULT_HANDLER, IMMEDIATE_HANDLER, SYNC_SET_HANDLER)


@dataclass
class NodeSpec:
    """One node with its ports resolved. Ports are ``TAG:index`` strings."""

    name: str
    calculator: str
    inputs: list[StreamRef]
    outputs: list[StreamRef]
    side_packets: list[StreamRef]
    back_edges: set[str]
    handler: str
    # Groups of input ports synchronised together (one group for Default, one per port for
    # Immediate), tried in this order. Back-edge ports form groups of their own, last.
    sync_sets: list[list[str]]
    config: NodeConfig = field(repr=False)

    def input(self, port: str) -> StreamRef:
        return next(ref for ref in self.inputs if ref.port == port)


@dataclass
class GraphSpec:
    """A graph that passed validation."""

    name: str
    path: Path | None
    base_path: Path
    inputs: list[StreamRef]
    outputs: list[StreamRef]
    side_packets: list[StreamRef]
    nodes: list[NodeSpec]

    @property
    def input_names(self) -> list[str]:
        return [ref.name for ref in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [ref.name for ref in self.outputs]
