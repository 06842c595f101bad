"""PythonExecutorCalculator under the OVMS Python-node contract, modelled on OVMS's own cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ovserve.errors import InvalidInput, NodeError, ServableNotReady, Unsupported
from ovserve.graph.executor import OutputPacket, RunError
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.protocol.tensor import Tensor
from ovserve.serving.registry import Registry
from ovserve.serving.servable import Servable
from tests.graphs import python_node, single_node_graph, write_graph, write_handler

ECHO = """
class OvmsPythonModel:
    def initialize(self, kwargs):
        self.kwargs = kwargs
    def execute(self, inputs):
        return [Tensor("result", bytes(inputs[0]) + b"!")]
"""

GENERATOR = """
class OvmsPythonModel:
    def execute(self, inputs):
        text = bytes(inputs[0]).decode()
        for i in range(3):
            yield [Tensor("result", f"{text}:{i}".encode())]
"""


def text(value: str) -> Tensor:
    return Tensor("text", value.encode())


async def load(folder: Path, code: str, *, loopback: bool = False) -> Servable:
    entry = single_node_graph(folder, code, loopback=loopback)
    return await Servable.load(entry, BUILTIN_CALCULATORS)


@pytest.fixture
async def echo(tmp_path: Path) -> AsyncIterator[Servable]:
    servable = await load(tmp_path / "echo", ECHO)
    yield servable
    await servable.unload()


async def test_unary_echo_and_initialize_kwargs(echo: Servable, tmp_path: Path) -> None:
    outputs = await echo.infer({"text": text("hi")})
    assert bytes(outputs["result"]) == b"hi!"
    model = echo.calculators["node"].model  # type: ignore[attr-defined]
    assert model.kwargs == {
        "node_name": "node", "input_names": ["text"], "output_names": ["result"],
        "base_path": str(tmp_path / "echo"),
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('raise RuntimeError("model exploded")', "execute raised RuntimeError: model exploded"),
        ('return Tensor("result", b"x")', "execute returned Tensor, not a list of pyovms.Tensor"),
        ("return [b'raw']", "execute returned a list holding bytes, not pyovms.Tensor"),
        ('return [Tensor("nope", b"x")]',
         "execute returned a tensor named 'nope', which is not an output of the node "
         "(outputs: result)"),
    ],
)
async def test_execute_errors_are_reported_and_graph_keeps_serving(
    tmp_path: Path, body: str, message: str
) -> None:
    code = f"""
class OvmsPythonModel:
    def execute(self, inputs):
        if bytes(inputs[0]) == b"ok":
            return [Tensor("result", b"fine")]
        {body}
"""
    servable = await load(tmp_path / "bad", code)
    with pytest.raises(NodeError) as info:
        await servable.infer({"text": text("boom")})
    assert str(info.value) == f"node node: {message}"
    assert bytes((await servable.infer({"text": text("ok")}))["result"]) == b"fine"
    await servable.unload()


async def test_initialize_raising_makes_only_that_servable_unavailable(tmp_path: Path) -> None:
    broken = single_node_graph(tmp_path / "broken", """
class OvmsPythonModel:
    def initialize(self, kwargs):
        raise ValueError("no weights here")
    def execute(self, inputs):
        return []
""")
    fine = single_node_graph(tmp_path / "fine", ECHO)
    registry = Registry(BUILTIN_CALCULATORS)
    await registry.load([broken, fine])
    with pytest.raises(ServableNotReady, match="is not available \\(error id "):
        registry.get("broken")  # clients get an id; the reason is for the log
    assert "initialize raised ValueError: no weights here" in (
        registry.states["broken"].error or "")
    assert bytes((await registry.get("fine").infer({"text": text("a")}))["result"]) == b"a!"
    await registry.unload()


async def test_finalize_runs_on_unload_and_its_errors_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "finalized"
    servable = await load(tmp_path / "fin", f"""
class OvmsPythonModel:
    def execute(self, inputs):
        return []
    def finalize(self):
        open({str(marker)!r}, "w").close()
        raise RuntimeError("finalize failed")
""")
    await servable.unload()
    assert marker.exists()
    assert "unloading node node failed" in caplog.text


async def test_generator_yields_three_times_in_order(tmp_path: Path) -> None:
    servable = await load(tmp_path / "gen", GENERATOR, loopback=True)
    async with servable.stream() as run:
        run.send({"text": text("a")})
        run.close_inputs()
        events = [e async for e in run.events()]
    assert all(isinstance(e, OutputPacket) for e in events)
    packets = [e for e in events if isinstance(e, OutputPacket)]
    assert [bytes(p.payload) for p in packets] == [b"a:0", b"a:1", b"a:2"]
    assert [p.timestamp for p in packets] == [0, 1, 2]
    await servable.unload()


async def test_several_requests_on_one_stream(tmp_path: Path) -> None:
    servable = await load(tmp_path / "gen", GENERATOR, loopback=True)
    async with servable.stream() as run:
        run.send({"text": text("a")})
        seen: list[bytes] = []
        async for event in run.events():
            assert isinstance(event, OutputPacket)
            seen.append(bytes(event.payload))
            if seen == [b"a:0", b"a:1", b"a:2"]:
                # the generator ends on the LOOPBACK packet after its last yield; the run is
                # idle once it has, and only then is the stream free for the next request
                await asyncio.wait_for(run.idle(), timeout=30)
                run.send({"text": text("b")})
            if len(seen) == 6:
                run.close_inputs()
    assert seen[3:] == [b"b:0", b"b:1", b"b:2"]
    await servable.unload()


async def test_new_input_while_generating_is_rejected(tmp_path: Path) -> None:
    release = tmp_path / "release"
    code = f"""
import pathlib, time
class OvmsPythonModel:
    def execute(self, inputs):
        yield [Tensor("result", b"first")]
        deadline = time.monotonic() + 10
        while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield [Tensor("result", b"second")]
"""
    servable = await load(tmp_path / "busy", code, loopback=True)
    async with servable.stream() as run:
        run.send({"text": text("a")})
        events = run.events()
        first = await anext(events)
        assert isinstance(first, OutputPacket) and bytes(first.payload) == b"first"
        run.send({"text": text("b")})
        release.touch()
        run.close_inputs()
        rest = [e async for e in events]
    errors = [str(e.error) for e in rest if isinstance(e, RunError)]
    assert len(errors) == 1 and "still streaming results of an earlier request" in errors[0]
    assert "create a new stream" in errors[0]
    # the running generator is not disturbed; the rejected request produced nothing
    assert [bytes(e.payload) for e in rest if isinstance(e, OutputPacket)] == [b"second"]
    await servable.unload()


async def test_yield_without_loopback_is_a_configuration_error(tmp_path: Path) -> None:
    servable = await load(tmp_path / "noloop", GENERATOR)
    async with servable.stream() as run:
        run.send({"text": text("a")})
        run.close_inputs()
        (event,) = [e async for e in run.events()]
    assert isinstance(event, RunError)
    assert "no LOOPBACK back edge" in str(event.error)
    await servable.unload()


async def test_generator_called_unary_is_rejected(tmp_path: Path) -> None:
    servable = await load(tmp_path / "gen", GENERATOR, loopback=True)
    with pytest.raises(Unsupported, match="call this servable with a stream"):
        await servable.infer({"text": text("a")})
    await servable.unload()


async def test_generator_raising_midway_reports_and_keeps_serving(tmp_path: Path) -> None:
    code = """
class OvmsPythonModel:
    def execute(self, inputs):
        yield [Tensor("result", b"one")]
        raise KeyError("lost")
"""
    servable = await load(tmp_path / "midway", code, loopback=True)
    for _ in range(2):  # the same servable serves a second stream after the failure
        async with servable.stream() as run:
            run.send({"text": text("a")})
            run.close_inputs()
            events = [e async for e in run.events()]
        assert isinstance(events[0], OutputPacket) and bytes(events[0].payload) == b"one"
        assert isinstance(events[1], RunError)
        assert "execute raised KeyError: 'lost'" in str(events[1].error)
    await servable.unload()


async def test_cancelling_a_run_closes_the_generator(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    code = f"""
import itertools
class OvmsPythonModel:
    def execute(self, inputs):
        try:
            for i in itertools.count():
                yield [Tensor("result", str(i).encode())]
        finally:
            open({str(closed)!r}, "w").close()
"""
    servable = await load(tmp_path / "endless", code, loopback=True)
    async with servable.stream() as run:
        run.send({"text": text("a")})
        events = run.events()
        for _ in range(5):
            await anext(events)
    # leaving the block (client gone) cancelled the node tasks and closed the generator
    assert closed.exists()
    await servable.unload()


async def test_two_model_py_in_different_folders_do_not_collide(tmp_path: Path) -> None:
    upper = single_node_graph(tmp_path / "upper", """
class OvmsPythonModel:
    def execute(self, inputs):
        return [Tensor("result", bytes(inputs[0]).upper())]
""")
    reverse = single_node_graph(tmp_path / "reverse", """
class OvmsPythonModel:
    def execute(self, inputs):
        return [Tensor("result", bytes(inputs[0])[::-1])]
""")
    registry = Registry(BUILTIN_CALCULATORS)
    await registry.load([upper, reverse])
    assert bytes((await registry.get("upper").infer({"text": text("abc")}))["result"]) == b"ABC"
    assert bytes((await registry.get("reverse").infer({"text": text("abc")}))["result"]) == b"cba"
    await registry.unload()


async def test_execute_runs_concurrently_off_the_event_loop(tmp_path: Path) -> None:
    # Both requests must be inside execute at once to pass the barrier: a handler serialised
    # behind a lock, or run on the event loop, would time out.
    servable = await load(tmp_path / "barrier", """
import threading
barrier = threading.Barrier(2, timeout=10)
class OvmsPythonModel:
    def execute(self, inputs):
        barrier.wait()
        return [Tensor("result", bytes(inputs[0]))]
""")
    results = await asyncio.gather(
        servable.infer({"text": text("x")}), servable.infer({"text": text("y")})
    )
    assert sorted(bytes(r["result"]) for r in results) == [b"x", b"y"]
    await servable.unload()


async def test_64_concurrent_streams_complete_in_order(tmp_path: Path) -> None:
    servable = await load(tmp_path / "gen", GENERATOR, loopback=True)

    async def one(i: int) -> list[bytes]:
        async with servable.stream() as run:
            run.send({"text": text(str(i))})
            run.close_inputs()
            return [bytes(e.payload) async for e in run.events() if isinstance(e, OutputPacket)]

    results = await asyncio.gather(*(one(i) for i in range(64)))
    assert results == [[f"{i}:{k}".encode() for k in range(3)] for i in range(64)]
    await servable.unload()


ITERATOR = """
class OvmsPythonModel:
    def execute(self, inputs):
        text = bytes(inputs[0]).decode()
        return iter([[Tensor("result", f"{text}:{i}".encode())] for i in range(2)])
"""


async def test_an_iterator_that_is_not_a_generator_streams(tmp_path: Path) -> None:
    """OVMS takes any iterator from execute (py::isinstance<py::iterator>), not only
    generators."""
    servable = await load(tmp_path / "iter", ITERATOR, loopback=True)
    async with servable.stream() as run:
        run.send({"text": text("a")})
        run.close_inputs()
        events = [e async for e in run.events()]
    assert [bytes(e.payload) for e in events if isinstance(e, OutputPacket)] == [b"a:0", b"a:1"]
    assert not [e for e in events if isinstance(e, RunError)]
    await servable.unload()


async def test_initialize_names_include_the_loopback_stream(tmp_path: Path) -> None:
    """OVMS's PythonNodeResources passes every stream name of the node, LOOPBACK's too."""
    code = GENERATOR + """
    def initialize(self, kwargs):
        self.kwargs = kwargs
"""
    servable = await load(tmp_path / "gen", code, loopback=True)
    model = servable.calculators["node"].model  # type: ignore[attr-defined]
    assert model.kwargs["input_names"] == ["loopback", "text"]
    assert model.kwargs["output_names"] == ["loopback", "result"]
    await servable.unload()


LABELS = """
class OvmsPythonModel:
    def initialize(self, kwargs):
        self.labels = b""
    def execute(self, inputs):
        for tensor in inputs:
            if tensor.name == "labels":
                self.labels = bytes(tensor)
        images = [t for t in inputs if t.name == "image"]
        return [Tensor("result", bytes(t) + b" in " + self.labels) for t in images]
"""


@pytest.mark.parametrize("handler", ["ImmediateInputStreamHandler", "DefaultInputStreamHandler"])
async def test_a_stream_sends_labels_once_then_images_alone(tmp_path: Path,
                                                            handler: str) -> None:
    """OVMS reference.md "Incomplete inputs": later requests of a stream carry a subset of the
    graph's inputs; the handler sees only the inputs that came."""
    folder = tmp_path / "labels"
    write_handler(folder, LABELS)
    entry = write_graph(folder, ["labels", "image"], ["result"], [python_node(
        "node", "model.py", ["LABELS:labels", "IMAGE_IN:image"], ["OUTPUT:result"],
        handler_name=handler)])
    servable = await Servable.load(entry, BUILTIN_CALCULATORS)
    first = {"labels": Tensor("labels", b"cat,dog"), "image": Tensor("image", b"img0")}
    servable.check_inputs(first, partial=True)
    later = {"image": Tensor("image", b"img1")}
    servable.check_inputs(later, partial=True)
    with pytest.raises(InvalidInput, match="missing input 'labels'"):
        servable.check_inputs(later)  # a unary request still needs every input
    with pytest.raises(InvalidInput, match="missing input"):
        servable.check_inputs({}, partial=True)
    async with servable.stream() as run:
        run.send(first)
        await asyncio.wait_for(run.idle(), timeout=30)
        run.send(later)
        run.close_inputs()
        results = [bytes(e.payload) async for e in run.events() if isinstance(e, OutputPacket)]
    assert results == [b"img0 in cat,dog", b"img1 in cat,dog"]
    await servable.unload()
