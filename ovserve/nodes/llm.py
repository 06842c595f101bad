"""The built-in LLM node: OpenAI-style generation requests in, text chunks out.

Graphs name it ``HttpLLMCalculator`` as OVMS does (``LLMCalculator`` works too) and take the
OVMS graph shape: ``HTTP_REQUEST_PAYLOAD`` in, ``HTTP_RESPONSE_PAYLOAD`` out, optional
``LOOPBACK`` back edge and ``LLM_NODE_RESOURCES`` / ``LLM_NODE_EXECUTION_CONTEXTS`` side
packets (accepted, not needed: the node emits a request's chunks at increasing timestamps
itself). Options are OVMS 2026's ``mediapipe.LLMCalculatorOptions``; what each field does is
``nodes.llm_options``'s. The engine comes from the server's engine registry and
is shared with every other node and handler that uses the same model directory; options the
graph sets must agree with theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ovserve.aio import merged
from ovserve.chat.incremental import ChatOutputParser
from ovserve.chat.plan import ChatConfig, plan
from ovserve.engine import Engine, Generation, GenerationLimits
from ovserve.engine.base import Prepared
from ovserve.engine.limits import Prompt
from ovserve.errors import InvalidInput, NodeError
from ovserve.graph.calculator import Calculator, LoadContext, NodeRun, Packet, RunContext
from ovserve.graph.config import node_options
from ovserve.graph.proto.llm_calculator_pb2 import LLMCalculatorOptions
from ovserve.graph.spec import NodeSpec
from ovserve.nodes import llm_options
from ovserve.nodes.options import model_problems, plugin_config_problems, resolve, stream_problems
from ovserve.protocol.chat import ToolCallDelta
from ovserve.protocol.generation import (
    REQUEST_TAG,
    RESPONSE_TAG,
    GenerationChunk,
    GenerationRequest,
)

log = logging.getLogger(__name__)


def _options(node: NodeSpec) -> LLMCalculatorOptions | None:
    options = node_options(node.config, LLMCalculatorOptions)
    return options if isinstance(options, LLMCalculatorOptions) else None


def _models_path(options: LLMCalculatorOptions, base_path: Path) -> Path:
    return resolve(options.models_path, base_path)


class LLMCalculator(Calculator):
    name = "HttpLLMCalculator"
    input_tags = frozenset({REQUEST_TAG, "LOOPBACK"})
    output_tags = frozenset({RESPONSE_TAG, "LOOPBACK"})
    side_packet_tags = frozenset({"LLM_NODE_RESOURCES", "LLM_NODE_EXECUTION_CONTEXTS"})

    engine: Engine
    limits: GenerationLimits

    @classmethod
    def check(cls, node: NodeSpec, base_path: Path) -> list[str]:
        options = _options(node)
        if options is None or not options.models_path:
            return ["node_options has no [type.googleapis.com/mediapipe.LLMCalculatorOptions] "
                    "with a models_path"]
        ovms = llm_options.problems(options, base_path)
        if any(p.startswith(("pipeline_type", "models_path")) for p in ovms):
            return ovms  # not a text LLM: its folder's contents are beside the point
        return [*model_problems("models_path", _models_path(options, base_path),
                                "scripts/download_model.py"),
                *ovms,
                *plugin_config_problems(options.plugin_config),
                *stream_problems(REQUEST_TAG, [r.tag for r in node.inputs], "input"),
                *stream_problems(RESPONSE_TAG, [r.tag for r in node.outputs], "output")]

    def __init__(self, node: NodeSpec, context: LoadContext) -> None:
        super().__init__(node, context)
        options = _options(node)
        assert options is not None  # checked by validation
        self.options = options
        self.models_path = _models_path(options, context.base_path)
        self.request_port = next(r.port for r in node.inputs if r.tag == REQUEST_TAG)
        self.response_port = next(r.port for r in node.outputs if r.tag == RESPONSE_TAG)
        #: tool / reasoning / chat template settings, for the chat layer
        self.agent_options = llm_options.agent_options(options)
        self.chat_config = ChatConfig(
            tool_parser=self.agent_options["tool_parser"],
            reasoning_parser=self.agent_options["reasoning_parser"],
            enable_tool_guided_generation=options.enable_tool_guided_generation,
            allow_request_template=bool(
                context.engines.chat.get("trust_request_chat_template")))

    def engine_options(self) -> dict[str, Any]:
        """The ``EngineConfig`` fields this graph sets (those it leaves out are not compared
        with other graphs using the same model)."""
        return llm_options.engine_fields(self.options, self.context.base_path)

    async def load(self) -> None:
        context, options = self.context, self.engine_options()
        if self.agent_options["chat_template_mode"] == "JINJA":
            log.info("LLM node %s of %s: chat_template_mode JINJA: templates are rendered by "
                     "openvino-genai's template engine (MINJA)", self.node.name or "(unnamed)",
                     context.servable)
        if self.options.pipeline_type == llm_options.Options.LM:
            log.info("LLM node %s of %s: pipeline_type LM runs on continuous batching",
                     self.node.name or "(unnamed)", context.servable)
        self.engine = await asyncio.get_running_loop().run_in_executor(
            context.executor, lambda: context.engines.acquire(context.servable, self.models_path,
                                                              **options))
        self.limits = GenerationLimits(max_tokens_limit=self.options.max_tokens_limit)

    def open_run(self, context: RunContext) -> NodeRun:
        return _LLMRun(self, context)


class _LLMRun(NodeRun):
    def __init__(self, calc: LLMCalculator, context: RunContext) -> None:
        self.calc = calc
        self.context = context

    async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
        packet = inputs.get(self.calc.request_port)
        if packet is None:  # a LOOPBACK packet: nothing to do, chunks are emitted directly
            return
        request = packet.payload
        if not isinstance(request, GenerationRequest):
            raise NodeError(self.calc.node.name,
                            f"expected a generation request, got {type(request).__name__}")
        limit = self.calc.options.best_of_limit
        if request.n > limit:  # ovserve generates n candidates (best_of = n)
            raise InvalidInput(f"n: at most {limit} (the graph's best_of_limit)", "n")
        async for chunk in self.generate(request):
            self.context.emit(self.calc.response_port, Packet(timestamp, chunk))
            timestamp += 1

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Chunks of every choice as they come; raises the engine's error at once."""
        calc = self.calc
        engine = calc.engine
        parsers: Callable[[], ChatOutputParser] | None = None
        if request.kind == "chat":
            prompt: Prompt = request.messages
            params = request.params
        else:  # completions take the prompt as it is
            prompt, params = request.prompt or "", replace(request.params,
                                                           apply_chat_template=False)

        def prepare() -> Prepared:
            nonlocal prompt, params, parsers
            if request.kind == "chat":  # the chat layer renders and picks the parsers
                chat = plan(engine, request.messages, request.chat, calc.chat_config,
                            structured=params.structured is not None)
                prompt = chat.prompt
                params = replace(params, apply_chat_template=False,
                                 structured=chat.structured or params.structured,
                                 skip_special_tokens=(params.skip_special_tokens
                                                      and not chat.keep_special))
                parsers = chat.output_parser if chat.parses else None
            return engine.prepare(prompt, params, calc.limits, request.adapter)

        # rendering and tokenizing are blocking work: off the event loop
        prepared = await asyncio.get_running_loop().run_in_executor(calc.context.executor,
                                                                    prepare)
        generations = engine.submit_async(prepared, n=request.n)
        names = engine.token_texts if request.params.logprobs else None
        streams = [self._chunks(i, g, request.sources, names,
                                parsers() if parsers is not None else None)
                   for i, g in enumerate(generations)]
        # one choice: read it directly (the merging queue costs a task hop per token)
        choices = streams[0] if len(streams) == 1 else merged(streams)
        try:
            async for chunk in choices:
                yield chunk
        finally:
            await choices.aclose()
            for generation in generations:
                generation.abort()

    @staticmethod
    async def _chunks(index: int, generation: Generation,
                      sources: tuple[dict[str, Any], ...] = (),
                      names: Callable[[list[int]], list[str]] | None = None,
                      parser: ChatOutputParser | None = None
                      ) -> AsyncGenerator[GenerationChunk, None]:
        """One choice's chunks (the first carries the sources); with a chat output parser,
        each chunk's text is parsed into content, reasoning and tool call pieces."""
        async for delta in generation.adeltas():
            done = delta.finish_reason is not None
            logprobs: tuple[tuple[str, float], ...] = ()
            if names is not None and delta.token_ids:
                logprobs = tuple(zip(names(delta.token_ids), delta.logprobs, strict=False))
            text, reasoning, reason = delta.text, "", delta.finish_reason
            calls: tuple[ToolCallDelta, ...] = ()
            if parser is not None:
                parsed = parser.feed(delta.text)
                if done:
                    parsed.add(parser.finish())
                    if parser.called and reason == "stop":
                        reason = "tool_calls"
                text, reasoning = parsed.content, parsed.reasoning
                calls = tuple(parsed.tool_calls)
            yield GenerationChunk(
                index=index, text=text, finish_reason=reason,
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=generation.completion_tokens if done else 0,
                sources=sources, logprobs=logprobs, reasoning=reasoning, tool_calls=calls)
            sources = ()
