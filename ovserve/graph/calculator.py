"""The calculator contract: what a node type declares and implements.

A ``Calculator`` instance exists once per node of a loaded servable and owns the node's
long-lived resources (a Python handler, an engine). For every graph run it opens a ``NodeRun``
that holds per-run state and processes input sets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from ovserve.engine.registry import EngineRegistry
from ovserve.graph.spec import NodeSpec

RunMode = Literal["unary", "stream"]


@dataclass(frozen=True)
class Packet:
    """A value on a stream at a timestamp."""

    timestamp: int
    payload: Any


class Emitter(Protocol):
    """How a node run sends packets out: to the stream bound to one of its output ports."""

    def __call__(self, port: str, packet: Packet) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """What a node run knows about the run it belongs to."""

    mode: RunMode
    side_packets: Mapping[str, Any]
    emit: Emitter
    adapter: str | None = None  # the LoRA adapter the request's model name chose


@dataclass(frozen=True)
class LoadContext:
    """What a calculator gets when its servable loads."""

    servable: str
    base_path: Path
    executor: Executor  # where blocking user code runs, never the event loop
    engines: EngineRegistry  # the server's engines; nodes acquire theirs as ``servable``


class NodeRun(ABC):
    """Per-run state of one node."""

    @abstractmethod
    async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
        """Handle one input set (ports -> packets, all at ``timestamp``)."""

    async def close(self) -> None:  # noqa: B027  (optional hook)
        """The run ended or was cancelled: release per-run resources."""


class Calculator(ABC):
    """A node type. Subclasses set ``name`` and register in ``ovserve.graph.registry``."""

    name: ClassVar[str]
    #: Tags allowed on input / output streams and side packets (None: any tag).
    input_tags: ClassVar[frozenset[str] | None] = None
    output_tags: ClassVar[frozenset[str] | None] = None
    side_packet_tags: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node: NodeSpec, context: LoadContext) -> None:
        self.node = node
        self.context = context

    @classmethod
    def check(cls, node: NodeSpec, base_path: Path) -> list[str]:
        """Problems with this node's options or files, found without running user code."""
        return []

    async def load(self) -> None:  # noqa: B027  (optional hook)
        """Acquire resources (run user ``initialize``); raise to make the servable unavailable."""

    async def unload(self) -> None:  # noqa: B027  (optional hook)
        """Release resources; errors are logged by the caller and unloading goes on."""

    @abstractmethod
    def open_run(self, context: RunContext) -> NodeRun:
        """Start this node's part of a graph run."""
