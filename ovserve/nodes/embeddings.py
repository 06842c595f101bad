"""The built-in embeddings node (OVMS's ``EmbeddingsCalculatorOV``): texts in, vectors out.

Graphs take OVMS's shape: ``REQUEST_PAYLOAD`` in, ``RESPONSE_PAYLOAD`` out, optional
``EMBEDDINGS_NODE_RESOURCES`` side packet (accepted, not needed), options
``mediapipe.EmbeddingsCalculatorOVOptions``. A packet is either an ``EmbeddingRequest`` (from
the OpenAI ``/v1/embeddings`` front end) answered with an ``EmbeddingResult``, or a KServe BYTES
tensor of texts answered with an FP32 tensor ``[texts, dimensions]``. The engine comes from the
server's engine registry, shared with every graph that embeds with the same model.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ovserve.engine.embeddings import EmbeddingEngine
from ovserve.errors import InvalidInput, NodeError
from ovserve.graph.calculator import Calculator, LoadContext, NodeRun, Packet, RunContext
from ovserve.graph.config import node_options
from ovserve.graph.proto.embeddings_calculator_pb2 import EmbeddingsCalculatorOVOptions
from ovserve.graph.spec import NodeSpec
from ovserve.nodes.options import model_problems, plugin_config_problems, resolve, stream_problems
from ovserve.protocol.embeddings import (
    EMBED_REQUEST_TAG,
    EMBED_RESPONSE_TAG,
    EmbeddingRequest,
    EmbeddingResult,
)
from ovserve.protocol.tensor import BYTES, Tensor, decode_bytes


def _options(node: NodeSpec) -> EmbeddingsCalculatorOVOptions | None:
    options = node_options(node.config, EmbeddingsCalculatorOVOptions)
    return options if isinstance(options, EmbeddingsCalculatorOVOptions) else None


def _models_path(options: EmbeddingsCalculatorOVOptions, base_path: Path) -> Path:
    return resolve(options.models_path, base_path)


def texts_of(tensor: Tensor) -> list[str]:
    """The texts of a KServe input: a BYTES tensor of UTF-8 strings."""
    if tensor.datatype != BYTES:
        raise InvalidInput(f"input {tensor.name!r}: embeddings take BYTES (texts), not "
                           f"{tensor.datatype}")
    try:
        return [item.decode() for item in decode_bytes(tensor)]
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"input {tensor.name!r}: not UTF-8 texts: {exc}") from exc


class EmbeddingsCalculator(Calculator):
    name = "EmbeddingsCalculatorOV"
    input_tags = frozenset({EMBED_REQUEST_TAG})
    output_tags = frozenset({EMBED_RESPONSE_TAG})
    side_packet_tags = frozenset({"EMBEDDINGS_NODE_RESOURCES"})

    engine: EmbeddingEngine

    @classmethod
    def check(cls, node: NodeSpec, base_path: Path) -> list[str]:
        options = _options(node)
        if options is None or not options.models_path:
            return ["node_options has no [type.googleapis.com/mediapipe."
                    "EmbeddingsCalculatorOVOptions] with a models_path"]
        return [*model_problems("models_path", _models_path(options, base_path),
                                "scripts/download_model.py --model all-minilm-l6-v2"),
                *plugin_config_problems(options.plugin_config),
                *stream_problems(EMBED_REQUEST_TAG, [r.tag for r in node.inputs], "input"),
                *stream_problems(EMBED_RESPONSE_TAG, [r.tag for r in node.outputs], "output")]

    def __init__(self, node: NodeSpec, context: LoadContext) -> None:
        super().__init__(node, context)
        options = _options(node)
        assert options is not None  # checked by validation
        self.options = options
        self.models_path = _models_path(options, context.base_path)
        self.request_port = next(r.port for r in node.inputs if r.tag == EMBED_REQUEST_TAG)
        self.response_port = next(r.port for r in node.outputs if r.tag == EMBED_RESPONSE_TAG)

    def engine_options(self) -> dict[str, Any]:
        options = self.options
        pooling = EmbeddingsCalculatorOVOptions.Pooling.Name(options.pooling)
        return {"device": options.target_device, "pooling": pooling,
                "normalize": options.normalize_embeddings, "truncate": options.truncate,
                "plugin_config": json.loads(options.plugin_config or "{}")}

    async def load(self) -> None:
        context, options = self.context, self.engine_options()
        self.engine = await asyncio.get_running_loop().run_in_executor(
            context.executor, lambda: context.engines.acquire_embeddings(
                context.servable, self.models_path, **options))

    def open_run(self, context: RunContext) -> NodeRun:
        return _EmbeddingsRun(self, context)


class _EmbeddingsRun(NodeRun):
    def __init__(self, calc: EmbeddingsCalculator, context: RunContext) -> None:
        self.calc = calc
        self.context = context

    async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
        payload = inputs[self.calc.request_port].payload
        engine = self.calc.engine
        if isinstance(payload, EmbeddingRequest):
            result = await engine.aembed(payload.texts)
            out: Any = EmbeddingResult(result.vectors, result.tokens)
        elif isinstance(payload, Tensor):
            result = await engine.aembed(texts_of(payload))
            out = Tensor.from_data("embeddings", result.vectors.tobytes(),
                                   result.vectors.shape, "FP32")
        else:
            raise NodeError(self.calc.node.name, f"expected texts, got {type(payload).__name__}")
        self.context.emit(self.calc.response_port, Packet(timestamp, out))
