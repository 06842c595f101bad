"""Plain models (OpenVINO IR, ONNX, ...) as engines: one compiled model and a pool of
OpenVINO infer requests, shared through the engine registry like the LLM and embedding engines.

Concurrent requests run on the pool at once: each takes an idle ``InferRequest``, starts it
with ``start_async`` and awaits its end (a thread per infer request waits on it: OpenVINO's
Python completion callback is skipped when an inference fails); with every request busy,
callers wait their turn in order. Nothing holds a lock while OpenVINO computes.

    engine = ModelEngine(ModelConfig(path=Path("model/1/model.xml"), nireq=4))
    outputs = await engine.infer({"a": array_a, "b": array_b})   # name -> numpy array
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ovserve.engine import devices
from ovserve.engine.measurements import ModelTimings
from ovserve.engine.pipelines import error_reason, model_properties
from ovserve.errors import EngineError, EngineUnavailable, InvalidInput

log = logging.getLogger(__name__)

#: OpenVINO element type name -> KServe datatype (OVMS's table; bf16 as OVMS reports it)
DATATYPES: dict[str, str] = {
    "f32": "FP32", "f16": "FP16", "f64": "FP64", "bf16": "BF16",
    "i8": "INT8", "i16": "INT16", "i32": "INT32", "i64": "INT64",
    "u8": "UINT8", "u16": "UINT16", "u32": "UINT32", "u64": "UINT64", "boolean": "BOOL",
}
NUMPY_DTYPES: dict[str, Any] = {
    "FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT8": np.int8,
    "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8,
    "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64, "BOOL": np.bool_,
}
#: Files OpenVINO reads directly, in the order a version folder is searched
MODEL_SUFFIXES = (".xml", ".onnx", ".tflite", ".pdmodel", ".pb")
#: OVMS's optional renaming of a version's inputs and outputs
MAPPING_FILE = "mapping_config.json"

@dataclass(frozen=True)
class TensorInfo:
    """A model input or output as clients see it: OVMS's name (``get_any_name``), every name
    the tensor answers to, KServe datatype and shape (-1 for a dynamic dimension)."""

    name: str
    names: frozenset[str]
    datatype: str
    shape: tuple[int, ...]
    partial_shape: str  # OpenVINO's own text, e.g. "[?,3]" or "[1,3,224..448]"


@dataclass(frozen=True)
class ModelConfig:
    """How a model engine is built (two users of one model file must agree)."""

    path: Path  # the model file of one version
    device: str = "CPU"
    plugin_config: Mapping[str, Any] = field(default_factory=dict)
    #: infer requests in the pool; 0: OpenVINO's OPTIMAL_NUMBER_OF_INFER_REQUESTS
    nireq: int = 0
    #: OVMS's ``shape`` as (input name, shape text) pairs; name "": the model's only input.
    #: A shape text is ``(1,3,224,224)``, ``[1,-1,200:300]`` or ``auto`` (all dynamic).
    shape: tuple[tuple[str, str], ...] = ()
    #: OVMS's ``batch_size``: an int, or "auto" (a dynamic batch dimension)
    batch_size: int | str | None = None


def model_file(folder: Path) -> Path | None:
    """The model file in a version folder (``*.xml`` with its ``.bin``, ``*.onnx``, ...)."""
    for suffix in MODEL_SUFFIXES:
        found = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file())
        if found:
            return found[0]
    return None


def _partial_shape(value: str, what: str) -> Any:
    """OVMS's shape text ``(1,3,224,224)`` or ``[1,3,-1,200:300]`` -> PartialShape;
    "auto" -> None (every dimension dynamic)."""
    import openvino as ov

    if value.strip().lower() == "auto":
        return None
    text = re.sub(r"(\d+)\s*:\s*(\d+)", r"\1..\2", value.strip().strip("()[]"))
    try:
        return ov.PartialShape(f"[{text}]")
    except Exception as exc:
        raise EngineError(f"{what}: {value!r} is not a shape like (1,3,224,224)") from exc


def _kserve_datatype(element_type: Any, name: str) -> str:
    datatype = DATATYPES.get(element_type.get_type_name())
    if datatype is None:
        raise EngineError(f"tensor {name!r}: element type {element_type} has no KServe "
                          "datatype")
    return datatype


def _info(port: Any, mapping: Mapping[str, str]) -> TensorInfo:
    """A port as clients see it; ``mapping`` (mapping_config.json) renames it, and then only
    the new name is known, as in OVMS."""
    names = frozenset(port.get_names())
    name = port.get_any_name() if names else f"out_{port.get_index()}"
    mapped = next((mapping[n] for n in sorted(names) if n in mapping), None)
    if mapped is not None:
        name, names = mapped, frozenset({mapped})
    shape = port.get_partial_shape()
    dims = tuple(d.get_length() if d.is_static else -1 for d in shape) if shape.rank.is_static \
        else (-1,)
    return TensorInfo(name, names or frozenset({name}), _kserve_datatype(
        port.get_element_type(), name), dims, str(shape))


def read_mapping(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """OVMS's optional ``mapping_config.json`` beside a version's model: tensor name -> the
    name clients use, for ``inputs`` and ``outputs``."""
    path = folder / MAPPING_FILE
    if not path.is_file():
        return {}, {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EngineError(f"{path} is not readable JSON: {exc}") from exc
    parts = [data.get(kind) or {} if isinstance(data, dict) else None
             for kind in ("inputs", "outputs")]
    if not all(isinstance(part, dict) and all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in part.items()) for part in parts):
        raise EngineError(f"{path}: expected {{\"inputs\": {{tensor name: name}}, "
                          "\"outputs\": {...}}")
    return parts[0], parts[1]  # type: ignore[return-value]


class ModelEngine:
    """A compiled model and its pool of infer requests. ``infer`` from any event loop."""

    def __init__(self, config: ModelConfig) -> None:
        import openvino as ov

        devices.check(config.device)
        self.config = config
        self.name = config.path.parent.parent.name or config.path.stem
        core = ov.Core()
        try:
            model = core.read_model(str(config.path))
            self._reshape(model)
            compiled = core.compile_model(model, config.device.upper(),
                                          model_properties(config.plugin_config))
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"loading model {config.path} failed: "
                              f"{error_reason(exc)}") from exc
        self.compiled = compiled
        input_names, output_names = read_mapping(config.path.parent)
        self.inputs = [_info(port, input_names) for port in compiled.inputs]
        self.outputs = [_info(port, output_names) for port in compiled.outputs]
        self._by_name = {n: info for info in self.inputs for n in info.names}
        self._ports = dict(zip((i.name for i in self.inputs), compiled.inputs, strict=True))
        self._partial = {name: port.get_partial_shape() for name, port in self._ports.items()}
        self.rt_info = _rt_info(model)
        nireq = config.nireq or int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.nireq = max(nireq, 1)
        self._idle = [compiled.create_infer_request() for _ in range(self.nireq)]
        # one thread per infer request waits for it: OpenVINO's Python completion callback
        # is not called when an inference fails, so waiting is the only way to see failures
        self._wait_pool = ThreadPoolExecutor(self.nireq, thread_name_prefix=f"infer-{self.name}")
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._lock = threading.Lock()  # guards the idle list and the waiters, never inference
        self._closed = False
        self.total_requests = 0
        self.timings = ModelTimings()  # for OVMS's metrics
        log.info("model: loaded %s on %s (%d infer requests; inputs %s; outputs %s)",
                 config.path, config.device, self.nireq,
                 ", ".join(f"{i.name} {i.datatype}{list(i.shape)}" for i in self.inputs),
                 ", ".join(f"{o.name} {o.datatype}{list(o.shape)}" for o in self.outputs))

    def _reshape(self, model: Any) -> None:
        """Apply ``shape`` (over ``batch_size``, as in OVMS) before compiling."""
        import openvino as ov

        config, params = self.config, model.inputs
        if config.shape:
            shapes = dict(config.shape)
            if "" in shapes:
                if len(params) != 1:
                    raise EngineError(f"model {config.path}: a single shape was given for "
                                      f"{len(params)} inputs; give a shape per input name")
                shapes = {params[0].get_any_name(): shapes[""]}
            known = {n for p in params for n in p.get_names()}
            unknown = [n for n in shapes if n not in known]
            if unknown:
                raise EngineError(f"model {config.path}: shape names input {unknown[0]!r}, "
                                  f"which it does not have (inputs: "
                                  f"{', '.join(p.get_any_name() for p in params)})")
            new = {}
            for name, value in shapes.items():
                port = next(p for p in params if name in p.get_names())
                shape = _partial_shape(value, f"shape of input {name!r}")
                new[port] = shape if shape is not None else ov.PartialShape.dynamic(
                    port.get_partial_shape().rank)
            try:
                model.reshape(new)
            except Exception as exc:
                raise EngineError(f"model {config.path} cannot take the shape {shapes}: "
                                  f"{error_reason(exc)}") from exc
        elif config.batch_size not in (None, "", 0):
            batch = -1 if str(config.batch_size).lower() == "auto" else int(config.batch_size)
            try:
                for param in model.get_parameters():  # OVMS: no layout, the first dimension
                    if param.get_layout().empty:
                        param.set_layout(ov.Layout("N..."))
                ov.set_batch(model, batch)
            except Exception as exc:
                raise EngineError(f"model {config.path} cannot take batch_size "
                                  f"{config.batch_size}: "
                                  f"{error_reason(exc)}") from exc

    @property
    def ready(self) -> bool:
        return not self._closed

    def input(self, name: str) -> TensorInfo | None:
        """The input answering to ``name`` (any of its tensor names), or None."""
        return self._by_name.get(name)

    def check_inputs(self, inputs: Mapping[str, Any], servable: str) -> dict[str, np.ndarray]:
        """``inputs`` (name -> buffer object with ``datatype`` and ``shape``, e.g. a
        ``Tensor``) as arrays by the model's own input names; ``InvalidInput`` naming the
        input for a wrong name, count, datatype, shape or size."""
        import openvino as ov

        arrays: dict[str, np.ndarray] = {}
        names = ", ".join(i.name for i in self.inputs)
        for name, tensor in inputs.items():
            info = self.input(name)
            if info is None:
                raise InvalidInput(f"servable {servable} has no input {name!r} "
                                   f"(inputs: {names})", name)
            if info.name in arrays:
                raise InvalidInput(f"servable {servable}: input {info.name!r} given twice "
                                   f"(as {name!r})", name)
            datatype = getattr(tensor, "datatype", None)
            if datatype != info.datatype:
                raise InvalidInput(f"servable {servable}: input {name!r} takes {info.datatype}, "
                                   f"not {datatype}", name)
            shape = tuple(int(d) for d in getattr(tensor, "shape", ()))
            if not self._partial[info.name].compatible(ov.PartialShape(list(shape))):
                raise InvalidInput(f"servable {servable}: input {name!r} takes shape "
                                   f"{self._partial[info.name]} (-1 or ?: any), not "
                                   f"{list(shape)}", name)
            view = memoryview(tensor).cast("B")
            dtype = NUMPY_DTYPES.get(datatype)
            if dtype is None:  # BF16: no numpy type, handed over as raw 16-bit words
                dtype = np.uint16
            need = math.prod(shape) * np.dtype(dtype).itemsize
            if view.nbytes != need:
                raise InvalidInput(f"servable {servable}: input {name!r} has {view.nbytes} bytes "
                                   f"but shape {list(shape)} of {datatype} needs {need}", name)
            arrays[info.name] = _array(tensor, view, dtype, shape)
        missing = [i.name for i in self.inputs if i.name not in arrays]
        if missing:
            raise InvalidInput(f"servable {servable}: missing input {missing[0]!r} "
                               f"(inputs: {names})", missing[0])
        return arrays

    async def infer(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on ``arrays`` (checked by ``check_inputs``); the outputs by name,
        each an array of its own (copied out of the infer request, which goes back to the
        pool). A caller cancelled mid-inference leaves the request to finish; it goes back to
        the pool then."""
        import openvino as ov

        waiting = time.monotonic()
        request = await self._acquire()
        self.timings.acquired(time.monotonic() - waiting)
        try:
            for name, array in arrays.items():
                # numpy views are shared with OpenVINO; read-only buffers (a request's bytes)
                # are copied once, as OpenVINO takes only writable memory without a copy
                try:
                    request.set_tensor(self._ports[name], ov.Tensor(array, shared_memory=bool(
                        array.flags.writeable and array.flags.c_contiguous)))
                except Exception as exc:
                    raise InvalidInput(f"input {name!r}: {_last_line(exc)}", name) from exc
            started = time.monotonic()
            request.start_async()
        except BaseException:
            self._give_back(request, None)
            raise
        waiting_for = asyncio.get_running_loop().run_in_executor(self._wait_pool, request.wait)
        try:
            await asyncio.shield(waiting_for)
        except asyncio.CancelledError:
            waiting_for.add_done_callback(lambda done: self._finished(done, request, started))
            raise
        except Exception as exc:
            self._give_back(request, time.monotonic() - started)
            reason = _last_line(exc)
            if "shape" in reason.lower() or "dim" in reason.lower():
                # every input fit the model on its own: their shapes together do not
                raise InvalidInput(f"model {self.name} cannot run on these inputs: "
                                   f"{reason}") from exc
            raise EngineError(f"model {self.name}: inference failed: {reason}") from exc
        inferred = time.monotonic() - started
        try:
            self.total_requests += 1
            return {info.name: np.array(request.get_tensor(port).data, copy=True)
                    for info, port in zip(self.outputs, self.compiled.outputs, strict=True)}
        finally:
            self._give_back(request, inferred)

    def _finished(self, done: asyncio.Future[Any], request: Any, started: float) -> None:
        """A cancelled caller's inference ended: its request goes back to the pool."""
        if not done.cancelled():
            done.exception()  # retrieved: the caller is gone, nobody else wants it
        self._give_back(request, time.monotonic() - started)

    def _give_back(self, request: Any, inferred: float | None) -> None:
        """An acquired request goes back to the pool (``inferred``: its inference time)."""
        self.timings.released(inferred)
        self._release(request)

    async def _acquire(self) -> Any:
        if self._closed:
            raise EngineUnavailable(f"model {self.name} was unloaded")
        with self._lock:
            if self._idle:
                return self._idle.pop()
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            with self._lock:
                queued = waiter in self._waiters
                if queued:
                    self._waiters.remove(waiter)
            if not queued and waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over as we were cancelled
            raise

    def _release(self, request: Any) -> None:
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                loop = waiter.get_loop()
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_hand_over, waiter, request, self)
                    return
            self._idle.append(request)

    def close(self) -> None:
        self._closed = True
        self._wait_pool.shutdown(wait=False)


def _array(tensor: Any, view: memoryview, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The tensor's memory as an array without a copy: writable when the tensor wraps a
    writable numpy array (``ref_obj``: a Python node's output), read-only otherwise."""
    source = getattr(tensor, "ref_obj", None)
    if (isinstance(source, np.ndarray) and source.flags.c_contiguous and source.flags.writeable
            and source.nbytes == view.nbytes):
        shared: np.ndarray = source.reshape(-1).view(np.uint8).view(dtype).reshape(shape)
        return shared
    return np.frombuffer(view, dtype=dtype).reshape(shape)


def _hand_over(waiter: asyncio.Future[Any], request: Any, engine: ModelEngine) -> None:
    if waiter.cancelled():
        engine._release(request)
    else:
        waiter.set_result(request)


def _last_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


def _rt_info(model: Any) -> dict[str, Any]:
    """The model's ``model_info`` runtime info (labels and such) as OVMS reports it in model
    metadata: each value as text (a list's items joined by spaces)."""
    try:
        if not model.has_rt_info(["model_info"]):
            return {}
        info = model.get_rt_info()["model_info"]
        return {"model_info": {str(k): v.astype(str) for k, v in info.items()}}
    except Exception:  # rt_info of another shape: metadata goes without it
        log.warning("model %s: its model_info runtime info is not text; left out of its "
                    "metadata", model.get_friendly_name())
        return {}
