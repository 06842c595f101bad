"""The executor: chains, fan-out and joins, input policies, timestamps, side packets."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from ovserve.errors import InvalidInput, NodeError
from ovserve.graph.calculator import Calculator, NodeRun, Packet, RunContext
from ovserve.graph.executor import OutputPacket
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.protocol.tensor import Tensor
from ovserve.serving.servable import Servable
from tests.graphs import python_node, write_graph, write_handler

APPEND = """
import pathlib
class OvmsPythonModel:
    def initialize(self, kwargs):
        self.out = kwargs["output_names"][0]
        self.letter = kwargs["node_name"].encode()
    def execute(self, inputs):
        return [Tensor(self.out, b"".join(bytes(t) for t in inputs) + self.letter)]
"""

NAMES = """
class OvmsPythonModel:
    def execute(self, inputs):
        names = ",".join(t.name for t in inputs).encode()
        return [Tensor("o_" + t.name, names) for t in inputs]
"""


def t(name: str, value: str) -> Tensor:
    return Tensor(name, value.encode())


async def test_chain_of_three_nodes(tmp_path: Path) -> None:
    write_handler(tmp_path, APPEND)
    entry = write_graph(tmp_path, ["text"], ["out"], [
        python_node("a", "model.py", ["IN:text"], ["OUT:s1"]),
        python_node("b", "model.py", ["IN:s1"], ["OUT:s2"]),
        python_node("c", "model.py", ["IN:s2"], ["OUT:out"]),
    ])
    servable = await Servable.load(entry, BUILTIN_CALCULATORS)
    assert bytes((await servable.infer({"text": t("text", "x")}))["out"]) == b"xabc"
    await servable.unload()


async def test_fan_out_and_join_synchronise_by_timestamp(tmp_path: Path) -> None:
    write_handler(tmp_path, APPEND)
    entry = write_graph(tmp_path, ["text"], ["left", "joined"], [
        python_node("l", "model.py", ["IN:text"], ["OUT:left"]),
        python_node("r", "model.py", ["IN:text"], ["OUT:right"]),
        python_node("j", "model.py", ["A:left", "B:right"], ["OUT:joined"]),
    ])
    servable = await Servable.load(entry, BUILTIN_CALCULATORS)
    out = await servable.infer({"text": t("text", "x")})
    assert list(out) == ["left", "joined"]
    assert bytes(out["left"]) == b"xl"
    assert bytes(out["joined"]) == b"xlxrj"  # one execute with both inputs, sorted by tag
    await servable.unload()


@pytest.mark.parametrize(
    ("handler", "expected"),
    [("DefaultInputStreamHandler", (b"a,b", b"a,b")),
     ("ImmediateInputStreamHandler", (b"a", b"b"))],
)
async def test_input_policies(tmp_path: Path, handler: str, expected: tuple[bytes, ...]) -> None:
    write_handler(tmp_path, NAMES)
    entry = write_graph(tmp_path, ["a", "b"], ["o_a", "o_b"], [
        python_node("n", "model.py", ["A:a", "B:b"], ["OA:o_a", "OB:o_b"], handler_name=handler)
    ])
    servable = await Servable.load(entry, BUILTIN_CALCULATORS)
    async with servable.stream() as run:
        run.send({"a": t("a", "1"), "b": t("b", "2")})
        run.close_inputs()
        got = {e.stream: bytes(e.payload) async for e in run.events()
               if isinstance(e, OutputPacket)}
    assert (got["o_a"], got["o_b"]) == expected
    await servable.unload()


async def test_default_policy_runs_with_the_inputs_present(tmp_path: Path) -> None:
    # Only "a" is sent at timestamp 0: "b" is settled past it, so the node runs with "a" alone.
    write_handler(tmp_path, NAMES)
    entry = write_graph(tmp_path, ["a", "b"], ["o_a", "o_b"], [
        python_node("n", "model.py", ["A:a", "B:b"], ["OA:o_a", "OB:o_b"])
    ])
    servable = await Servable.load(entry, BUILTIN_CALCULATORS)
    async with servable.stream() as run:
        run.send({"a": t("a", "1")})
        run.send({"b": t("b", "2")})
        run.close_inputs()
        got = [(e.stream, e.timestamp, bytes(e.payload)) async for e in run.events()
               if isinstance(e, OutputPacket)]
    assert got == [("o_a", 0, b"a"), ("o_b", 1, b"b")]
    await servable.unload()


async def test_request_errors_name_the_input(tmp_path: Path) -> None:
    write_handler(tmp_path, APPEND)
    entry = write_graph(tmp_path, ["text"], ["out"],
                        [python_node("a", "model.py", ["IN:text"], ["OUT:out"])])
    servable = await Servable.load(entry, BUILTIN_CALCULATORS)
    with pytest.raises(InvalidInput, match=r"needs input\(s\) 'text'"):
        await servable.infer({})
    with pytest.raises(InvalidInput, match="has no input 'txet' \\(inputs: text\\)"):
        await servable.infer({"text": t("text", "x"), "txet": t("txet", "y")})
    async with servable.stream() as run:
        run.send({"text": t("text", "x")}, timestamp=5)
        with pytest.raises(InvalidInput, match="timestamp 3 must be at least 6"):
            run.send({"text": t("text", "y")}, timestamp=3)
        run.close_inputs()
        [e async for e in run.events()]
    await servable.unload()


class GreetingCalculator(Calculator):
    """A test calculator that turns a side packet into an output on every input."""

    name = "GreetingCalculator"
    side_packet_tags: ClassVar[frozenset[str] | None] = frozenset({"GREETING"})

    def open_run(self, context: RunContext) -> NodeRun:
        node = self.node

        class Run(NodeRun):
            async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
                greeting = context.side_packets[node.side_packets[0].name]
                context.emit(node.outputs[0].port, Packet(timestamp, Tensor("out", greeting)))

        return Run()


async def test_side_packets_come_from_the_request(tmp_path: Path) -> None:
    node = ('node { name: "g" calculator: "GreetingCalculator" input_stream: "IN:text" '
            'input_side_packet: "GREETING:greeting" output_stream: "OUT:out" }\n')
    entry = write_graph(tmp_path, ["text"], ["out"], [node],
                        extra='input_side_packet: "greeting"\n')
    calculators: dict[str, type[Calculator]] = {
        **BUILTIN_CALCULATORS, "GreetingCalculator": GreetingCalculator}
    servable = await Servable.load(entry, calculators)
    out = await servable.infer({"text": t("text", "x")}, side_packets={"greeting": b"hello"})
    assert bytes(out["out"]) == b"hello"
    with pytest.raises(InvalidInput, match="needs side packet\\(s\\) 'greeting'"):
        await servable.infer({"text": t("text", "x")})
    await servable.unload()


async def test_decreasing_timestamps_from_a_node_are_an_error(tmp_path: Path) -> None:
    class Backwards(Calculator):
        name = "Backwards"

        def open_run(self, context: RunContext) -> NodeRun:
            port = self.node.outputs[0].port

            class Run(NodeRun):
                async def process(self, timestamp: int, inputs: dict[str, Any]) -> None:
                    context.emit(port, Packet(timestamp + 1, Tensor("out", b"1")))
                    context.emit(port, Packet(timestamp, Tensor("out", b"2")))

            return Run()

    node = 'node { name: "b" calculator: "Backwards" input_stream: "text" output_stream: "out" }'
    entry = write_graph(tmp_path, ["text"], ["out"], [node])
    servable = await Servable.load(entry, {"Backwards": Backwards})
    with pytest.raises(NodeError, match="emitted timestamp 0 on stream 'out' after 1"):
        await servable.infer({"text": t("text", "x")})
    await servable.unload()
