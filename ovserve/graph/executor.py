"""Run a validated graph: one ``GraphRun`` per unary request or per stream.

Each node is an asyncio task that waits for a ready input set under its input policy, calls
its ``NodeRun.process`` and emits packets onto streams. Blocking user code runs in the
servable's thread pool (inside the nodes), so the event loop never blocks.

Input policies (MediaPipe's, reduced to what graphs here use):

- Default: all inputs of a node are synchronised by timestamp. An input set at timestamp T is
  ready when every input either holds a packet at T or is settled past T (its stream's bound is
  beyond T, or a later packet is queued). Back-edge inputs form sets of their own.
- Immediate: every packet is processed on its own, as it arrives.
- SyncSet: each listed group is synchronised as Default; inputs not listed form one more group.

A node's output streams advance their bound to T+1 once it has processed T, so downstream
nodes never wait for packets that will not come. A node finishes when its forward inputs are
closed and every queue is drained; the run finishes when every node has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from ovserve.errors import InvalidInput, NodeError, OvserveError
from ovserve.graph.calculator import Calculator, NodeRun, Packet, RunContext, RunMode
from ovserve.graph.observe import observer as node_observer
from ovserve.graph.spec import GraphSpec, NodeSpec

log = logging.getLogger(__name__)

INFINITY = math.inf


@dataclass(frozen=True)
class OutputPacket:
    """A packet that reached a graph output stream."""

    stream: str
    timestamp: int
    payload: Any


@dataclass(frozen=True)
class RunError:
    """A node failed while processing; the run goes on (streams report it in-band)."""

    error: OvserveError
    timestamp: int = -1  # of the input set whose processing failed


RunEvent = OutputPacket | RunError


class _Stream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.consumers: list[tuple[_Node, str]] = []
        self.is_output = False
        self.last_timestamp: float = -INFINITY
        self.bound: float = 0  # no packet below this timestamp will come
        self.closed = False


class _Node:
    run: NodeRun  # set by GraphRun once the node's emitter exists

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.queues: dict[str, deque[Packet]] = {ref.port: deque() for ref in spec.inputs}
        self.sources: dict[str, _Stream] = {}
        self.outputs: dict[str, _Stream] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def settled_past(self, port: str, timestamp: int) -> bool:
        queue = self.queues[port]
        if queue:
            return queue[0].timestamp > timestamp
        stream = self.sources[port]
        return stream.closed or stream.bound > timestamp

    def next_input_set(self) -> tuple[int, dict[str, Packet]] | None:
        for group in self.spec.sync_sets:
            heads = [self.queues[p][0].timestamp for p in group if self.queues[p]]
            if not heads:
                continue
            timestamp = min(heads)
            if all(
                (self.queues[p] and self.queues[p][0].timestamp >= timestamp)
                or self.settled_past(p, timestamp)
                for p in group
            ):
                return timestamp, {
                    p: self.queues[p].popleft()
                    for p in group
                    if self.queues[p] and self.queues[p][0].timestamp == timestamp
                }
        return None

    def finished(self) -> bool:
        forward_closed = all(
            self.sources[ref.port].closed
            for ref in self.spec.inputs
            if ref.port not in self.spec.back_edges
        )
        return forward_closed and not any(self.queues.values())


class GraphRun:
    """One execution of a graph. Use ``async with`` so cancellation always cleans up."""

    def __init__(
        self,
        graph: GraphSpec,
        calculators: Mapping[str, Calculator],
        *,
        mode: RunMode,
        side_packets: Mapping[str, Any] | None = None,
        adapter: str | None = None,
    ) -> None:
        self.graph = graph
        self.mode = mode
        side_packets = dict(side_packets or {})
        self._streams: dict[str, _Stream] = {}
        self._events: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        self._next_timestamp = 0  # lowest timestamp the next request may use
        self._processing = 0  # nodes inside process() now
        self._idle = asyncio.Event()  # nothing queued and nothing processing
        self._idle.set()
        self._inputs_closed = False
        self._watcher: asyncio.Task[None] | None = None
        self._nodes: list[_Node] = []
        for ref in graph.inputs:
            self._stream(ref.name)
        for ref in graph.outputs:
            self._stream(ref.name).is_output = True
        for spec in graph.nodes:
            node = _Node(spec)
            context = RunContext(mode=mode, side_packets=side_packets,
                                 emit=self._emitter(node), adapter=adapter)
            node.run = calculators[spec.name].open_run(context)
            for ref in spec.inputs:
                stream = self._stream(ref.name)
                stream.consumers.append((node, ref.port))
                node.sources[ref.port] = stream
            for ref in spec.outputs:
                node.outputs[ref.port] = self._stream(ref.name)
            self._nodes.append(node)

    def _stream(self, name: str) -> _Stream:
        if name not in self._streams:
            self._streams[name] = _Stream(name)
        return self._streams[name]

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> GraphRun:
        for node in self._nodes:
            node.task = asyncio.create_task(self._node_loop(node), name=f"node {node.spec.name}")
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel whatever still runs and close every node run (generators included)."""
        tasks = [n.task for n in self._nodes if n.task is not None and not n.task.done()]
        for task in tasks:
            task.cancel()
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        for node in self._nodes:
            try:
                await asyncio.shield(node.run.close())
            except Exception:
                log.exception("closing node %s failed", node.spec.name)

    # -- input -------------------------------------------------------------------------------

    def send(self, inputs: Mapping[str, Any], timestamp: int | None = None) -> int:
        """Put one packet per named graph input at ``timestamp`` (default: the next one).
        The names are the servable's to check (``Servable.check_inputs``)."""
        if self._inputs_closed:
            raise InvalidInput("the stream's inputs are already closed")
        if timestamp is None:  # after everything sent or emitted so far
            timestamp = self._next_timestamp
        elif timestamp < self._next_timestamp:
            raise InvalidInput(
                f"timestamp {timestamp} must be at least {self._next_timestamp}: timestamps "
                "increase within a stream"
            )
        self._idle.clear()
        for name, payload in inputs.items():
            self._deliver(self._streams[name], Packet(timestamp, payload))
        for ref in self.graph.inputs:  # inputs not sent at this timestamp are settled past it
            self._advance(self._streams[ref.name], timestamp + 1)
        self._next_timestamp = max(self._next_timestamp, timestamp + 1)
        return timestamp

    def close_inputs(self) -> None:
        """No more requests: the run ends once every node has drained its inputs."""
        if self._inputs_closed:
            return
        self._inputs_closed = True
        for ref in self.graph.inputs:
            self._close(self._streams[ref.name])

    # -- output ------------------------------------------------------------------------------

    async def idle(self) -> None:
        """Returns once every packet sent so far has been processed (generators included:
        their LOOPBACK keeps them busy until they end) and no node is working."""
        await self._idle.wait()

    def _check_idle(self) -> None:
        if self._processing == 0 and not any(
                queue for node in self._nodes for queue in node.queues.values()):
            self._idle.set()

    async def events(self) -> AsyncIterator[RunEvent]:
        """Packets on graph outputs and node errors, in the order they happen, until done."""
        while (event := await self._events.get()) is not None:
            yield event

    # -- internals ---------------------------------------------------------------------------

    def _emitter(self, node: _Node) -> Any:
        def emit(port: str, packet: Packet) -> None:
            stream = node.outputs.get(port)
            if stream is None:
                raise NodeError(node.spec.name, f"has no output port {port}")
            if packet.timestamp <= stream.last_timestamp:
                raise NodeError(
                    node.spec.name,
                    f"emitted timestamp {packet.timestamp} on stream {stream.name!r} after "
                    f"{stream.last_timestamp}; timestamps on a stream must increase",
                )
            self._deliver(stream, packet)

        return emit

    def _deliver(self, stream: _Stream, packet: Packet) -> None:
        stream.last_timestamp = packet.timestamp
        self._next_timestamp = max(self._next_timestamp, packet.timestamp + 1)
        self._advance(stream, packet.timestamp + 1)
        for node, port in stream.consumers:
            node.queues[port].append(packet)
            node.wake.set()
        if stream.is_output:
            self._events.put_nowait(OutputPacket(stream.name, packet.timestamp, packet.payload))

    def _advance(self, stream: _Stream, bound: float) -> None:
        if bound > stream.bound:
            stream.bound = bound
            for node, _ in stream.consumers:
                node.wake.set()

    def _close(self, stream: _Stream) -> None:
        stream.closed = True
        stream.bound = INFINITY
        for node, _ in stream.consumers:
            node.wake.set()

    async def _node_loop(self, node: _Node) -> None:
        try:
            while True:
                ready = node.next_input_set()
                if ready is None:
                    if node.finished():
                        return
                    self._check_idle()
                    node.wake.clear()
                    await node.wake.wait()
                    continue
                timestamp, inputs = ready
                self._processing += 1
                try:
                    watch = node_observer.get()  # the request's traces, when they are on
                    if watch is None:
                        await node.run.process(timestamp, inputs)
                    else:
                        with watch(node.spec.name, node.spec.calculator, timestamp):
                            await node.run.process(timestamp, inputs)
                except OvserveError as exc:
                    self._events.put_nowait(RunError(exc, timestamp))
                except Exception as exc:  # a calculator bug: report it, keep the run going
                    log.exception("node %s failed", node.spec.name)
                    self._events.put_nowait(RunError(NodeError(node.spec.name, repr(exc)),
                                                     timestamp))
                finally:
                    self._processing -= 1
                for stream in node.outputs.values():
                    self._advance(stream, timestamp + 1)
                self._check_idle()
        finally:
            for stream in node.outputs.values():
                self._close(stream)

    async def _watch(self) -> None:
        try:
            await asyncio.gather(*(n.task for n in self._nodes if n.task is not None))
        finally:
            self._events.put_nowait(None)
