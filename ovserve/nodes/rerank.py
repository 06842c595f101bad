"""The built-in rerank node (OVMS's ``RerankCalculatorOV``): a query and documents in, a
relevance score per document out.

Graphs take OVMS's shape: ``REQUEST_PAYLOAD`` in, ``RESPONSE_PAYLOAD`` out, optional
``RERANK_NODE_RESOURCES`` side packet (accepted, not needed), options
``mediapipe.RerankCalculatorOVOptions`` (as ``node_options`` or as the ``ext`` extension). A
packet is a ``RerankRequest`` (from the Cohere/vLLM front ends: ``/v3/rerank``, ``/v1/rerank``,
``/v1/score``) answered with a ``RerankResult``. The engine comes from the server's engine
registry, shared with every graph (and RAG retriever) that reranks with the same model.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ovserve.engine.rerank import RerankEngine
from ovserve.errors import InvalidInput, NodeError
from ovserve.graph.calculator import Calculator, LoadContext, NodeRun, Packet, RunContext
from ovserve.graph.proto.rerank_calculator_pb2 import RerankCalculatorOVOptions
from ovserve.graph.spec import NodeSpec
from ovserve.nodes.openvino_inference import options_of
from ovserve.nodes.options import model_problems, plugin_config_problems, resolve, stream_problems
from ovserve.protocol.embeddings import EmbeddingRequest
from ovserve.protocol.rerank import (
    RERANK_REQUEST_TAG,
    RERANK_RESPONSE_TAG,
    RerankRequest,
    RerankResult,
)
from ovserve.protocol.tensor import Tensor

PREPARE = "scripts/make_reranker.py"


def _options(node: NodeSpec) -> RerankCalculatorOVOptions:
    options = options_of(node, RerankCalculatorOVOptions)
    assert isinstance(options, RerankCalculatorOVOptions)
    return options


def engine_options(options: RerankCalculatorOVOptions) -> dict[str, Any]:
    """``RerankConfig`` fields from the node's options (only those the graph sets, so two
    graphs on one model disagree only about what they both say)."""
    out: dict[str, Any] = {"max_documents": options.max_allowed_chunks,
                           "plugin_config": json.loads(options.plugin_config or "{}")}
    if options.HasField("target_device"):
        out["device"] = options.target_device
    if options.HasField("max_position_embeddings"):
        out["max_length"] = options.max_position_embeddings
    return out


class RerankCalculator(Calculator):
    name = "RerankCalculatorOV"
    input_tags = frozenset({RERANK_REQUEST_TAG})
    output_tags = frozenset({RERANK_RESPONSE_TAG})
    side_packet_tags = frozenset({"RERANK_NODE_RESOURCES"})

    engine: RerankEngine

    @classmethod
    def check(cls, node: NodeSpec, base_path: Path) -> list[str]:
        options = _options(node)
        if not options.models_path:
            return ["node_options has no [type.googleapis.com/mediapipe."
                    "RerankCalculatorOVOptions] with a models_path"]
        problems = [*model_problems("models_path", resolve(options.models_path, base_path),
                                    PREPARE),
                    *plugin_config_problems(options.plugin_config),
                    *stream_problems(RERANK_REQUEST_TAG, [r.tag for r in node.inputs], "input"),
                    *stream_problems(RERANK_RESPONSE_TAG, [r.tag for r in node.outputs],
                                     "output")]
        if options.max_allowed_chunks < 1:
            problems.append("max_allowed_chunks must be at least 1")
        if options.HasField("max_position_embeddings") and options.max_position_embeddings < 8:
            problems.append("max_position_embeddings must be at least 8")
        return problems

    def __init__(self, node: NodeSpec, context: LoadContext) -> None:
        super().__init__(node, context)
        self.options = _options(node)
        self.models_path = resolve(self.options.models_path, context.base_path)
        self.request_port = next(r.port for r in node.inputs if r.tag == RERANK_REQUEST_TAG)
        self.response_port = next(r.port for r in node.outputs if r.tag == RERANK_RESPONSE_TAG)

    async def load(self) -> None:
        context, options = self.context, engine_options(self.options)
        self.engine = await asyncio.get_running_loop().run_in_executor(
            context.executor, lambda: context.engines.acquire_rerank(
                context.servable, self.models_path, **options))

    def open_run(self, context: RunContext) -> NodeRun:
        return _RerankRun(self, context)


class _RerankRun(NodeRun):
    def __init__(self, calc: RerankCalculator, context: RunContext) -> None:
        self.calc = calc
        self.context = context

    async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
        payload = inputs[self.calc.request_port].payload
        servable = self.calc.context.servable
        if isinstance(payload, RerankRequest):
            result: RerankResult = await self.calc.engine.arerank(payload.query,
                                                                  payload.documents)
        elif isinstance(payload, EmbeddingRequest):
            raise InvalidInput(f"model: `{servable}` is a rerank model, not an embedding "
                               "model (POST /v3/rerank, /v1/rerank or /v1/score)", "model")
        elif isinstance(payload, Tensor):
            raise InvalidInput(f"servable {servable} is a rerank graph: send its requests to "
                               "POST /v3/rerank, /v1/rerank or /v1/score, not KServe tensors")
        else:
            raise NodeError(self.calc.node.name,
                            f"expected a rerank request, got {type(payload).__name__}")
        self.context.emit(self.calc.response_port, Packet(timestamp, result))
