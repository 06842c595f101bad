"""``PythonExecutorCalculator``: runs an OVMS ``model.py`` (``OvmsPythonModel``) as a node.

Contract (as OVMS): one ``OvmsPythonModel`` per node, shared by all runs; ``initialize(kwargs)``
once at load, ``finalize()`` at unload; ``execute(inputs)`` gets the node's input tensors sorted
by tag (LOOPBACK excluded; inputs without a packet at that timestamp left out) and returns a
list of tensors routed by ``Tensor.name``, or any other iterator (a generator, usually) whose
every item goes out at the next timestamp, driven by the LOOPBACK back edge. ``initialize``'s
``input_names`` / ``output_names`` are every stream name of the node, LOOPBACK's included.

Unlike OVMS: handlers are loaded by path (two ``model.py`` never collide), errors are reported
at once, and the graph keeps serving after one. Extension: a handler may also define
``execute_unary(inputs)``, used for unary requests, so one streaming servable serves both
unary and streaming clients. An ``ovserve.errors`` exception raised by a handler keeps its
kind (an ``InvalidInput`` is a 400 / INVALID_ARGUMENT, not a node crash).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import inspect
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ovserve.engine import exemplars
from ovserve.engine.registry import bound
from ovserve.engine.scope import CallScope, within
from ovserve.errors import GraphConfigError, NodeError, OvserveError, Unsupported
from ovserve.graph.calculator import Calculator, LoadContext, NodeRun, Packet, RunContext
from ovserve.graph.config import node_options
from ovserve.graph.proto.python_executor_pb2 import PythonExecutorCalculatorOptions
from ovserve.graph.spec import NodeSpec
from ovserve.nodes import ovms_env
from ovserve.protocol.tensor import Tensor

log = logging.getLogger(__name__)

LOOPBACK = "LOOPBACK"
CLASS_NAME = "OvmsPythonModel"
_modules: dict[tuple[str, int], ModuleType] = {}


def handler_path(node: NodeSpec, base_path: Path) -> Path | None:
    options = node_options(node.config, PythonExecutorCalculatorOptions)
    if not isinstance(options, PythonExecutorCalculatorOptions) or not options.handler_path:
        return None
    path = Path(options.handler_path)
    return path if path.is_absolute() else base_path / path


def import_handler(path: Path) -> ModuleType:
    """Import ``path`` under a name unique to it; re-import only when the file changed."""
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key in _modules:
        return _modules[key]
    name = "ovserve_handler_" + hashlib.sha1(key[0].encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise GraphConfigError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    ovms_env.install()  # what OVMS's image gives handlers (OVModelForCausalLM.clone)
    folder = str(path.parent)
    sys.path.insert(0, folder)  # handlers may import modules next to them, as under OVMS
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise GraphConfigError(
            f"importing handler {path} raised {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        sys.path.remove(folder)
        if folder not in sys.path:
            sys.path.append(folder)
    _modules[key] = module
    return module


def handler_class(path: Path) -> type[Any]:
    module = import_handler(path)
    cls = getattr(module, CLASS_NAME, None)
    if not inspect.isclass(cls):
        raise GraphConfigError(f"handler {path} defines no class {CLASS_NAME}")
    if not callable(getattr(cls, "execute", None)):
        raise GraphConfigError(f"handler {path}: {CLASS_NAME} has no execute method")
    return cls


class _Pump:
    """Runs a handler's generator on one thread of the servable's pool, at most ``ahead``
    items ahead of the graph, handing each item to the event loop.

    One thread hop per item (a ``next()`` per item submitted to the pool would cost two), and
    the generator only ever runs on that one thread, so closing it there never meets "generator
    already executing".
    """

    def __init__(self, generator: Iterator[Any], calc: PythonExecutorCalculator,
                 ahead: int = 2, adapter: str | None = None) -> None:
        self.generator = generator
        self.loop = asyncio.get_running_loop()
        self.items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.room = threading.Semaphore(ahead)
        self.stopped = False
        self.done = calc.context.executor.submit(calc.with_engines(self._run, adapter=adapter))

    def _run(self) -> None:
        try:
            while True:
                self.room.acquire()
                if self.stopped:
                    return
                try:
                    entry: tuple[str, Any] = ("item", next(self.generator))
                except StopIteration:
                    entry = ("end", None)
                except BaseException as exc:  # handed to the graph as the node's error
                    entry = ("error", exc)
                if self.stopped:
                    return
                self.loop.call_soon_threadsafe(self.items.put_nowait, entry)
                if entry[0] != "item":
                    return
        finally:
            _close(self.generator)

    async def next(self) -> tuple[str, Any]:
        """("item", value), ("end", None) or ("error", exception)."""
        entry = await self.items.get()
        self.room.release()
        return entry

    async def close(self) -> None:
        """Stop pumping; returns once the generator is closed (a running ``next()`` ends first)."""
        self.stopped = True
        self.room.release()
        await asyncio.wrap_future(self.done)


class PythonExecutorCalculator(Calculator):
    name = "PythonExecutorCalculator"
    input_tags = None
    output_tags = None
    side_packet_tags = frozenset({"PYTHON_NODE_RESOURCES"})

    model: Any

    @classmethod
    def check(cls, node: NodeSpec, base_path: Path) -> list[str]:
        path = handler_path(node, base_path)
        if path is None:
            return [
                "node_options has no [type.googleapis.com/mediapipe."
                "PythonExecutorCalculatorOptions] with a handler_path"
            ]
        if not path.is_file():
            return [f"handler file {path} does not exist"]
        try:
            handler_class(path)
        except GraphConfigError as exc:
            return [str(exc)]
        return []

    def __init__(self, node: NodeSpec, context: LoadContext) -> None:
        super().__init__(node, context)
        path = handler_path(node, context.base_path)
        assert path is not None  # checked by validation
        self.path = path
        self.has_loopback = any(ref.tag == LOOPBACK for ref in node.outputs)
        self.outputs = {ref.name: ref.port for ref in node.outputs if ref.tag != LOOPBACK}
        self.loopback_port = next(
            (ref.port for ref in node.outputs if ref.tag == LOOPBACK), None
        )

    def with_engines(self, fn: Any, *args: Any, adapter: str | None = None) -> Any:
        """``fn(*args)`` with the server's engines bound for ``shared_engine`` calls in it, the
        LoRA ``adapter`` the request's model name chose (``engine.registry.bound``) and the
        request's exemplar labels (its engine requests' ids in the metrics)."""
        return functools.partial(_bound_call, self, adapter, exemplars.current(), fn, *args)

    async def call(self, fn: Any, *args: Any, adapter: str | None = None) -> Any:
        """Run handler code in the servable's pool (never on the event loop). Cancelled (the
        client left, a deadline passed), the thread cannot be stopped, but every engine
        request the call made, or makes later, is aborted: the handler sees its generation
        end and returns early."""
        call_scope = CallScope()
        future = self.context.executor.submit(
            functools.partial(_scoped_call, call_scope, self.with_engines(fn, *args,
                                                                          adapter=adapter)))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            call_scope.cancel()
            raise

    async def load(self) -> None:
        self.model = handler_class(self.path)()
        initialize = getattr(self.model, "initialize", None)
        if initialize is None:
            log.info("node %s: loaded handler %s", self.node.name, self.path)
            return
        kwargs = {  # as OVMS's PythonNodeResources: every stream name, LOOPBACK's too
            "node_name": self.node.name,
            "input_names": [r.name for r in self.node.inputs],
            "output_names": [r.name for r in self.node.outputs],
            "base_path": str(self.path.parent),
        }
        try:
            await self.call(initialize, kwargs)
        except Exception as exc:
            log.exception("initialize of node %s (%s) failed", self.node.name, self.path)
            raise NodeError(
                self.node.name, f"initialize raised {type(exc).__name__}: {exc}"
            ) from exc
        log.info("node %s: loaded handler %s", self.node.name, self.path)

    async def unload(self) -> None:
        finalize = getattr(getattr(self, "model", None), "finalize", None)
        if finalize is not None:
            await self.call(finalize)

    def open_run(self, context: RunContext) -> NodeRun:
        return _PythonNodeRun(self, context)


class _PythonNodeRun(NodeRun):
    def __init__(self, calc: PythonExecutorCalculator, context: RunContext) -> None:
        self.calc = calc
        self.context = context
        self.pump: _Pump | None = None

    @property
    def node(self) -> str:
        return self.calc.node.name

    async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
        loopback = [p for p in inputs if p.startswith(LOOPBACK + ":")]
        if loopback:
            await self._advance(timestamp + 1)
            return
        if self.pump is not None:
            raise NodeError(
                self.node, "is still streaming results of an earlier request on this stream; "
                "create a new stream for a new request",
            )
        ports = sorted(inputs, key=lambda p: (p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])))
        tensors = [inputs[p].payload for p in ports]
        execute = self.calc.model.execute
        if self.context.mode == "unary":  # ovserve extension: one handler for both kinds
            execute = getattr(self.calc.model, "execute_unary", execute)
        try:
            result = await self.calc.call(execute, tensors, adapter=self.context.adapter)
        except OvserveError:
            raise  # ovserve's own errors (e.g. a prompt over the context) keep their kind
        except Exception as exc:
            log.error("node %s: execute raised", self.node, exc_info=exc)
            raise NodeError(self.node, f"execute raised {type(exc).__name__}: {exc}") from exc
        if isinstance(result, Iterator):  # OVMS takes any iterator, a generator or not
            if not self.calc.has_loopback:
                _close(result)
                raise NodeError(
                    self.node, "execute yields (a generator) but the node has no LOOPBACK "
                    "back edge in the graph; add LOOPBACK input and output streams to stream",
                )
            if self.context.mode == "unary":
                _close(result)
                raise Unsupported(
                    f"node {self.node} streams its results (execute yields); call this "
                    "servable with a stream (ModelStreamInfer), not a unary request"
                )
            self.pump = _Pump(result, self.calc, adapter=self.context.adapter)
            await self._advance(timestamp)
            return
        self._emit(timestamp, result, "returned")

    async def _advance(self, timestamp: int) -> None:
        pump = self.pump
        if pump is None:
            return
        kind, item = await pump.next()
        if kind != "item":
            self.pump = None
            if kind == "error":
                if isinstance(item, OvserveError):
                    raise item
                log.error("node %s: execute generator raised", self.node, exc_info=item)
                raise NodeError(self.node,
                                f"execute raised {type(item).__name__}: {item}") from item
            return
        try:
            self._emit(timestamp, item, "yielded")
        except NodeError:
            self.pump = None
            await pump.close()
            raise
        assert self.calc.loopback_port is not None
        self.context.emit(self.calc.loopback_port, Packet(timestamp, None))

    def _emit(self, timestamp: int, result: Any, verb: str) -> None:
        if not isinstance(result, list):
            raise NodeError(
                self.node, f"execute {verb} {type(result).__name__}, not a list of pyovms.Tensor"
            )
        routed = []
        for item in result:
            if not isinstance(item, Tensor):
                raise NodeError(
                    self.node,
                    f"execute {verb} a list holding {type(item).__name__}, not pyovms.Tensor",
                )
            port = self.calc.outputs.get(item.name)
            if port is None:
                raise NodeError(
                    self.node,
                    f"execute {verb} a tensor named {item.name!r}, which is not an output of "
                    f"the node (outputs: {', '.join(self.calc.outputs) or 'none'})",
                )
            routed.append((port, item))
        for port, item in routed:
            self.context.emit(port, Packet(timestamp, item))

    async def close(self) -> None:
        pump, self.pump = self.pump, None
        if pump is not None:
            await pump.close()


def _close(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def _scoped_call(call_scope: CallScope, fn: Any) -> Any:
    with within(call_scope):
        return fn()


def _bound_call(calc: PythonExecutorCalculator, adapter: str | None,
                labels: Mapping[str, str], fn: Any, *args: Any) -> Any:
    with bound(calc.context.engines, calc.context.servable, adapter), \
            exemplars.tagged(**labels):
        return fn(*args)
