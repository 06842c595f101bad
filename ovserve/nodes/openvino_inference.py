"""OVMS's model-inference calculators, for graphs that run plain models between Python nodes.

- ``OpenVINOModelServerSessionCalculator``: options ``servable_name`` / ``servable_version``
  name a model served by this server (config.json or the graph's subconfig.json); its output
  side packet ``SESSION:<name>`` is the session inference nodes use.
- ``OpenVINOInferenceCalculator``: input side packet ``SESSION``; each input stream's tag is
  mapped to a model input by ``tag_to_input_tensor_names`` (a tag not listed is the input name
  itself), each output stream's tag to a model output by ``tag_to_output_tensor_names``.
  Vector tags (``OVTENSORS``, ``TENSORS``, ``MPTENSORS``, ``TFTENSORS``, ``TFLITE_TENSORS``)
  carry lists of tensors ordered by ``input_order_list`` / ``output_order_list`` in OVMS; no
  ovserve node makes or takes a list, so a graph using them is refused at load.
- ``PyTensorOvTensorConverterCalculator``: ``OVMS_PY_TENSOR`` <-> ``OVTENSOR``.

Inside ovserve every tensor packet is a ``pyovms.Tensor``: OVTENSOR, TENSOR, TFTENSOR and the
rest are tags, not types, so the converter checks and renames; the inference node hands the
tensors' memory to OpenVINO as numpy views (``engine.model``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from ovserve.engine.model import ModelEngine
from ovserve.errors import GraphConfigError, InvalidInput, NodeError
from ovserve.graph.calculator import Calculator, LoadContext, NodeRun, Packet, RunContext
from ovserve.graph.config import node_options, parse_stream_ref
from ovserve.graph.proto.openvinoinferencecalculator_pb2 import OpenVINOInferenceCalculatorOptions
from ovserve.graph.proto.openvinomodelserversessioncalculator_pb2 import (
    OpenVINOModelServerSessionCalculatorOptions,
)
from ovserve.graph.proto.pytensor_ovtensor_converter_calculator_pb2 import (
    PyTensorOvTensorConverterCalculatorOptions,
)
from ovserve.graph.spec import NodeSpec
from ovserve.protocol.tensor import BYTES, DATATYPE_FORMATS, ITEMSIZES, Tensor

SESSION_TAG = "SESSION"
OVTENSOR_TAG = "OVTENSOR"
PY_TENSOR_TAG = "OVMS_PY_TENSOR"
#: Tags whose packets are lists of tensors (OVMS's supportedVectorTags)
VECTOR_TAGS = ("OVTENSORS", "TENSORS", "MPTENSORS", "TFTENSORS", "TFLITE_TENSORS")


def options_of(node: NodeSpec, message_type: type[Message]) -> Any:
    """The node's options of ``message_type``: from ``node_options`` (an Any) or from
    ``options { [mediapipe.X.ext] {...} }``; an empty message when neither is given."""
    found = node_options(node.config, message_type)
    if found is not None:
        return found
    ext = getattr(message_type, "ext", None)
    if ext is not None and node.config.HasField("options") and \
            node.config.options.HasExtension(ext):
        return node.config.options.Extensions[ext]
    return message_type()


def _output_side_packets(node: NodeSpec) -> list[str]:
    return list(node.config.output_side_packet)


@dataclass(frozen=True)
class ModelSession:
    """What a session node hands its graph's inference nodes: a served model's version."""

    servable_name: str
    version: int | None
    engine: ModelEngine


class OpenVINOModelServerSessionCalculator(Calculator):
    name = "OpenVINOModelServerSessionCalculator"
    input_tags = frozenset()
    output_tags = frozenset()
    side_packet_tags = frozenset()

    @classmethod
    def check(cls, node: NodeSpec, base_path: Path) -> list[str]:
        options = options_of(node, OpenVINOModelServerSessionCalculatorOptions)
        problems = []
        if not options.servable_name:
            problems.append("options need a servable_name ([type.googleapis.com/mediapipe."
                            "OpenVINOModelServerSessionCalculatorOptions] { servable_name: "
                            "... })")
        if options.servable_version and not options.servable_version.isdigit():
            problems.append(f"servable_version {options.servable_version!r} is not a version "
                            "number")
        for field in ("service_url", "server_config"):
            if options.HasField(field):
                problems.append(f"{field} is not supported: the model must be served by this "
                                "server (config.json or the graph's subconfig.json)")
        packets = _output_side_packets(node)
        try:
            refs = [parse_stream_ref(p) for p in packets]
        except ValueError as exc:
            return [*problems, f"bad output_side_packet {exc}"]
        if [r.tag for r in refs] != [SESSION_TAG]:
            problems.append(f"needs exactly one output_side_packet {SESSION_TAG}:<name>, has "
                            f"{packets or 'none'}")
        return problems

    def __init__(self, node: NodeSpec, context: LoadContext) -> None:
        """Binds the session as the graph is built (models load before graphs), so every
        inference node finds it when it loads, wherever the session node is in the file."""
        super().__init__(node, context)
        self.options = options_of(node, OpenVINOModelServerSessionCalculatorOptions)
        self.packet = parse_stream_ref(_output_side_packets(node)[0]).name
        version = int(self.options.servable_version) if self.options.servable_version else None
        name = self.options.servable_name
        engine = context.engines.model(context.servable, name, version)
        context.engines.bind_session(context.servable, self.packet,
                                     ModelSession(name, version, engine))

    def open_run(self, context: RunContext) -> NodeRun:
        return _NoRun()


class _NoRun(NodeRun):
    async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
        """A session node has no inputs: the executor never calls this."""


def _vector(tag: str) -> bool:
    return tag.startswith(VECTOR_TAGS)


class OpenVINOInferenceCalculator(Calculator):
    name = "OpenVINOInferenceCalculator"
    side_packet_tags = frozenset({SESSION_TAG})

    @classmethod
    def check(cls, node: NodeSpec, base_path: Path) -> list[str]:
        options = options_of(node, OpenVINOInferenceCalculatorOptions)
        problems = []
        if [r.tag for r in node.side_packets] != [SESSION_TAG]:
            problems.append(f"needs the input_side_packet {SESSION_TAG}:<session> of an "
                            "OpenVINOModelServerSessionCalculator")
        if not node.outputs:
            problems.append("needs at least one output_stream")
        vectors = [r for r in (*node.inputs, *node.outputs) if _vector(r.tag)]
        if vectors:
            problems.append(f"stream {vectors[0]}: vector streams ({', '.join(VECTOR_TAGS)}) "
                            "carry lists of tensors, which no ovserve node makes or takes; "
                            "use one stream per tensor (OVTENSOR, OVTENSOR1, ...)")
        for kind, names, order, refs in (
                ("input", options.tag_to_input_tensor_names, options.input_order_list,
                 node.inputs),
                ("output", options.tag_to_output_tensor_names, options.output_order_list,
                 node.outputs)):
            if order:
                problems.append(f"{kind}_order_list is only for vector streams, which ovserve "
                                "does not support")
            tags = {r.tag for r in refs}
            unknown = [key for key in names if key not in tags]
            if unknown:
                problems.append(f"tag_to_{kind}_tensor_names names tag {unknown[0]!r}, which no "
                                f"{kind} stream of the node has (tags: {', '.join(sorted(tags))})")
        return problems

    def __init__(self, node: NodeSpec, context: LoadContext) -> None:
        super().__init__(node, context)
        self.options = options_of(node, OpenVINOInferenceCalculatorOptions)
        self.packet = node.side_packets[0].name
        self.session: ModelSession | None = None

    async def load(self) -> None:
        """Check the streams' tensor names against the session's model."""
        session = self.context.engines.session(self.context.servable, self.packet)
        if session is None:
            raise GraphConfigError(f"node {self.node.name}: no session node gives side packet "
                                   f"{self.packet!r}")
        self._check_names(session)
        self.session = session

    def _check_names(self, session: ModelSession) -> None:
        engine, node = session.engine, self.node
        problems = []
        for kind, refs, names, known in (
                ("input", node.inputs, self.options.tag_to_input_tensor_names,
                 {n for i in engine.inputs for n in i.names}),
                ("output", node.outputs, self.options.tag_to_output_tensor_names,
                 {n for o in engine.outputs for n in o.names})):
            for ref in refs:
                wanted = names.get(ref.tag, ref.tag)
                if wanted not in known:
                    ports = engine.inputs if kind == "input" else engine.outputs
                    problems.append(
                        f"node {node.name}: {kind} stream {ref.tag}:{ref.name} names tensor "
                        f"{wanted!r}, which model {session.servable_name} does not have "
                        f"({kind}s: {', '.join('/'.join(sorted(p.names)) for p in ports)})")
        if problems:
            raise GraphConfigError("; ".join(problems), problems)

    def model(self) -> ModelSession:
        """The graph's session for this node (found when the node loaded)."""
        if self.session is None:
            raise NodeError(self.node.name, "runs before it was loaded")
        return self.session

    def open_run(self, context: RunContext) -> NodeRun:
        return _InferenceRun(self, context)


class _InferenceRun(NodeRun):
    def __init__(self, calc: OpenVINOInferenceCalculator, context: RunContext) -> None:
        self.calc = calc
        self.context = context

    def _inputs(self, inputs: dict[str, Packet]) -> dict[str, Tensor]:
        """Model input name -> tensor: each stream's tag through tag_to_input_tensor_names."""
        names, node = self.calc.options.tag_to_input_tensor_names, self.calc.node
        named: dict[str, Tensor] = {}
        for port, packet in inputs.items():
            tag = node.input(port).tag
            if not isinstance(packet.payload, Tensor):
                raise NodeError(node.name, f"input {tag} got {type(packet.payload).__name__}, "
                                "not a tensor")
            named[names.get(tag, tag)] = packet.payload
        return named

    async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
        calc = self.calc
        session = calc.model()
        engine = session.engine
        where = f"{session.servable_name} (node {calc.node.name})"
        results = await engine.infer(engine.check_inputs(self._inputs(inputs), where))
        outputs = {info.name: Tensor(info.name, results[info.name],
                                     shape=results[info.name].shape, datatype=info.datatype)
                   for info in engine.outputs}
        aliases = {n: info.name for info in engine.outputs for n in info.names}
        names = calc.options.tag_to_output_tensor_names
        for ref in calc.node.outputs:
            wanted = names.get(ref.tag, ref.tag)
            if wanted not in aliases:
                raise NodeError(calc.node.name, f"model {session.servable_name} has no output "
                                f"{wanted!r} for stream {ref.tag}:{ref.name} (outputs: "
                                f"{', '.join(outputs)})")
            payload = outputs[aliases[wanted]]
            self.context.emit(ref.port, Packet(timestamp, payload))


class PyTensorOvTensorConverterCalculator(Calculator):
    name = "PyTensorOvTensorConverterCalculator"
    input_tags = frozenset({OVTENSOR_TAG, PY_TENSOR_TAG})
    output_tags = frozenset({OVTENSOR_TAG, PY_TENSOR_TAG})

    @classmethod
    def check(cls, node: NodeSpec, base_path: Path) -> list[str]:
        tags = ([r.tag for r in node.inputs], [r.tag for r in node.outputs])
        if tags not in (([OVTENSOR_TAG], [PY_TENSOR_TAG]), ([PY_TENSOR_TAG], [OVTENSOR_TAG])):
            return [f"needs one input and one output stream: {OVTENSOR_TAG} in and "
                    f"{PY_TENSOR_TAG} out, or {PY_TENSOR_TAG} in and {OVTENSOR_TAG} out"]
        options = options_of(node, PyTensorOvTensorConverterCalculatorOptions)
        if tags[0] == [OVTENSOR_TAG] and PY_TENSOR_TAG not in options.tag_to_output_tensor_names:
            return [f"converting {OVTENSOR_TAG} to {PY_TENSOR_TAG} needs "
                    f"tag_to_output_tensor_names {{ key: \"{PY_TENSOR_TAG}\" value: \"<name>\" }} "
                    "(the Python tensor's name)"]
        return []

    def __init__(self, node: NodeSpec, context: LoadContext) -> None:
        super().__init__(node, context)
        self.to_python = node.outputs[0].tag == PY_TENSOR_TAG
        options = options_of(node, PyTensorOvTensorConverterCalculatorOptions)
        self.output_name = options.tag_to_output_tensor_names.get(PY_TENSOR_TAG, "")

    def open_run(self, context: RunContext) -> NodeRun:
        return _ConverterRun(self, context)


class _ConverterRun(NodeRun):
    def __init__(self, calc: PyTensorOvTensorConverterCalculator, context: RunContext) -> None:
        self.calc = calc
        self.context = context

    async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
        calc = self.calc
        (packet,) = inputs.values()
        tensor = packet.payload
        if not isinstance(tensor, Tensor):
            raise NodeError(calc.node.name, f"expected a tensor, got {type(tensor).__name__}")
        if calc.to_python:
            out = Tensor(calc.output_name, tensor, shape=tensor.shape, datatype=tensor.datatype)
        else:  # OVMS's checks before it builds an ov::Tensor
            if tensor.datatype == BYTES or tensor.datatype not in DATATYPE_FORMATS:
                raise InvalidInput(f"node {calc.node.name}: tensor {tensor.name!r} of datatype "
                                   f"{tensor.datatype} has no OpenVINO precision", tensor.name)
            if any(d < 0 for d in tensor.shape):
                raise InvalidInput(f"node {calc.node.name}: tensor {tensor.name!r} has a "
                                   f"negative dimension in {list(tensor.shape)}", tensor.name)
            expected = memoryview(tensor).nbytes
            need = math.prod(tensor.shape) * ITEMSIZES[tensor.datatype]
            if expected != need:
                raise InvalidInput(f"node {calc.node.name}: tensor {tensor.name!r} holds "
                                   f"{expected} bytes but shape {list(tensor.shape)} of "
                                   f"{tensor.datatype} needs {need}", tensor.name)
            out = tensor
        self.context.emit(calc.node.outputs[0].port, Packet(timestamp, out))

