"""The OpenAI API's orchestration, between the router (HTTP shapes) and the servables.

Requests arrive as protocol models and leave as protocol models (or async iterators of
chunks); errors are raised as ovserve errors naming the field (``InvalidInput.param``) and the
error handlers answer them. Each request is counted once in the metrics: its error, its time
to first token (streams) and its duration when its response is complete.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from ovserve.aio import merged, prepended
from ovserve.chat.plan import ChatConfig, plan
from ovserve.engine import grammar
from ovserve.engine.interface import Engine
from ovserve.errors import InvalidInput, OvserveError, ServableNotFound
from ovserve.nodes.llm import LLMCalculator
from ovserve.protocol.generation import (
    GenerationChunk,
    GenerationRequest,
    SamplingParams,
    StructuredKind,
)
from ovserve.serving.registry import Registry
from ovserve.serving.servable import Servable
from ovserve.transport import engine_requests, request_ids, tracing
from ovserve.transport.engine_requests import Observed, llama_timings, observing
from ovserve.transport.errors import shape_of
from ovserve.transport.metrics import Metrics, Tracked
from ovserve.transport.names import ServedNames
from ovserve.transport.openai.chat_settings import chat_settings, tools_of
from ovserve.transport.openai.chat_settings import settings as chat_settings_of
from ovserve.transport.openai.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatLogprobs,
    ChatStreamChoice,
    CompletionChoice,
    CompletionChunk,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    DeltaMessage,
    DetokenizeRequest,
    DetokenizeResponse,
    EmbeddingsRequest,
    FinishReason,
    FunctionCall,
    FunctionDelta,
    LoadLoraAdapterRequest,
    ModelCard,
    ModelList,
    SamplingFields,
    TokenizeRequest,
    TokenizeResponse,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    UnloadLoraAdapterRequest,
    Usage,
)

log = logging.getLogger(__name__)
MAX_PROMPTS = 64  # prompts in one /v1/completions request
REGEX_SPECIAL = set("\\.^$*+?()[]{}|/")


def _given(value: Any) -> bool:
    return value not in (None, False, [], {}, "")


_NOT_AVAILABLE = "not supported by ovserve (openvino-genai has no such option)"
_CHAT_ONLY = "only for /chat/completions (a completion's prompt is not rendered)"
#: request fields (OpenAI's and vLLM's) that change the answer and that ovserve does not do:
#: when a request sets one to anything but its neutral value -> 400 naming it
UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "logit_bias": (_given, _NOT_AVAILABLE),
    "use_beam_search": (_given, "beam search is not supported"),
    "prompt_logprobs": (lambda v: v is not None, "the prompt's logprobs are not available"),
    "bad_words": (_given, _NOT_AVAILABLE),
    "allowed_token_ids": (_given, _NOT_AVAILABLE),
    # openvino-genai 2026.4.1 takes EBNF (StructuredOutputConfig.grammar) but compiles it
    # inside a generation step, where a bad one (measured: an undefined rule) fails the step
    # for the whole batch; with no validate() in its Python API and no xgrammar package to
    # check one first, a grammar cannot be taken safely
    "guided_grammar": (_given, "grammars are not supported: one that does not compile would "
                               "fail the engine's step for every request, and it cannot be "
                               "checked beforehand (guided_json, guided_regex and "
                               "guided_choice are supported)"),
    "skip_special_tokens": (lambda v: v is False, "special tokens are always skipped"),
    "spaces_between_special_tokens": (lambda v: v is False, _NOT_AVAILABLE),
    # chat's own fields sent to /completions (chat requests declare them)
    "tools": (_given, _CHAT_ONLY),
    "functions": (_given, _CHAT_ONLY),  # chat reads them as tools (legacy_functions)
    "function_call": (lambda v: v not in (None, "none", "auto"), _CHAT_ONLY),
    "tool_choice": (lambda v: v not in (None, "none", "auto"), _CHAT_ONLY),
    "chat_template": (_given, _CHAT_ONLY),
    "chat_template_kwargs": (_given, _CHAT_ONLY),
    "add_generation_prompt": (lambda v: v is False, _CHAT_ONLY),
    "continue_final_message": (_given, _CHAT_ONLY),
    "truncate_prompt_tokens": (lambda v: v is not None, "prompts are never truncated; a "
                               "prompt over the context is a 400"),
    "return_tokens_as_token_ids": (_given, _NOT_AVAILABLE),
    "documents": (_given, "documents go to a RAG graph (model `rag`), not in the request"),
}
Kind = Literal["completion", "chat"]
Chunk = CompletionChunk | ChatCompletionChunk


def _logprobs(req: SamplingFields) -> bool:
    """Whether the request asks for the sampled tokens' logprobs. openvino-genai returns no
    alternatives, so asking for any (``top_logprobs`` > 0, completions' ``logprobs`` > 0) is a
    400 naming the field rather than an answer without them."""
    value = req.logprobs
    if value is None or value is False:
        if req.top_logprobs:
            raise InvalidInput("top_logprobs: needs logprobs: true", "top_logprobs")
        return False
    if value is True:  # chat
        if req.top_logprobs:
            raise InvalidInput("top_logprobs: only the sampled token's logprob is available "
                               "(0); alternatives are not", "top_logprobs")
        return True
    if isinstance(value, int) and value == 0:  # completions: the sampled tokens only
        return True
    raise InvalidInput("logprobs: only the sampled token's logprob is available (logprobs: 0 "
                       "for completions, true for chat); alternatives are not", "logprobs")


def _schema_text(value: dict[str, Any] | str) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _choice_regex(choices: list[str]) -> str:
    """A regex matching exactly one of ``choices``."""
    escaped = ["".join("\\" + c if c in REGEX_SPECIAL else c for c in choice)
               for choice in choices]
    return "(" + "|".join(escaped) + ")"


def _structured(req: SamplingFields) -> tuple[StructuredKind, str] | None:
    """The one structured-output constraint a request asks for, by OpenAI's
    ``response_format`` or vLLM's ``guided_json`` / ``guided_regex`` / ``guided_choice`` /
    ``structured_outputs``; None for plain text. Two at once is a 400 naming them."""
    asked: dict[str, tuple[StructuredKind, str]] = {}
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_object":
        asked["response_format"] = ("json_schema", json.dumps({"type": "object"}))
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.json_schema is None or not fmt.json_schema.schema_:
            raise InvalidInput("response_format.json_schema.schema: a JSON schema is required",
                               "response_format")
        asked["response_format"] = ("json_schema", json.dumps(fmt.json_schema.schema_))
    if req.guided_json is not None:
        asked["guided_json"] = ("json_schema", _schema_text(req.guided_json))
    if req.guided_regex is not None:
        asked["guided_regex"] = ("regex", req.guided_regex)
    if req.guided_choice is not None:
        if not req.guided_choice:
            raise InvalidInput("guided_choice: give at least one choice", "guided_choice")
        asked["guided_choice"] = ("regex", _choice_regex(req.guided_choice))
    outputs = req.structured_outputs
    if outputs is not None:
        extra = sorted(k for k, v in (outputs.model_extra or {}).items() if v is not None)
        if extra:
            raise InvalidInput(f"structured_outputs.{extra[0]}: not supported (json, regex and "
                               "choice are)", "structured_outputs")
        forms: list[tuple[StructuredKind, str]] = []
        if outputs.json_ is not None:
            forms.append(("json_schema", _schema_text(outputs.json_)))
        if outputs.regex is not None:
            forms.append(("regex", outputs.regex))
        if outputs.choice:
            forms.append(("regex", _choice_regex(outputs.choice)))
        if len(forms) != 1:
            raise InvalidInput("structured_outputs: give exactly one of json, regex, choice",
                               "structured_outputs")
        asked["structured_outputs"] = forms[0]
    if len(asked) > 1:
        names = sorted(asked)
        raise InvalidInput(f"{names[1]}: give one structured-output constraint, not "
                           f"{' and '.join(names)}", names[1])
    for name, (kind, value) in asked.items():
        try:  # one that cannot compile would fail the engine's whole batch
            grammar.check(kind, value)
        except InvalidInput as exc:
            raise InvalidInput(f"{name}: {exc}", name) from exc
    return next(iter(asked.values()), None)


def _check_text(req: CompletionRequest | ChatCompletionRequest) -> None:
    """Text a tokenizer can take: a lone surrogate ("\ud800", valid JSON, not Unicode text) is
    a 400 naming the field, not a tokenizer's C++ error."""
    if isinstance(req, ChatCompletionRequest):
        texts = [(f"messages.{i}.content", m.text()) for i, m in enumerate(req.messages)]
    else:
        prompts = req.prompt if isinstance(req.prompt, list) else [req.prompt]
        for i, prompt in enumerate(prompts):
            if not prompt:  # no tokens: nothing for the model to continue
                where = f"prompt.{i}" if isinstance(req.prompt, list) else "prompt"
                raise InvalidInput(f"{where}: the prompt is empty; give some text", "prompt")
        texts = [("prompt", p) for p in prompts]
    texts += [("stop", s) for s in ([req.stop] if isinstance(req.stop, str) else req.stop or [])]
    for field, text in texts:
        _unicode(field, text)


def _unicode(field: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{field}: not valid Unicode text (a lone surrogate at position "
                           f"{exc.start})", field.split(".")[0]) from exc


def _unsupported(req: BaseModel) -> None:
    """A field ovserve does not implement but that would change the answer is a 400 naming
    it, never silently ignored; unknown fields without such an effect are only logged."""
    for name, value in (req.model_extra or {}).items():
        check = UNSUPPORTED.get(name)
        if check is not None and check[0](value):
            raise InvalidInput(f"{name}: {check[1]}", name)


def sampling_params(req: SamplingFields, max_tokens: int | None) -> SamplingParams:
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    top_k = req.top_k if req.top_k not in (None, -1, 0) else None
    return SamplingParams(
        max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, top_k=top_k,
        repetition_penalty=req.repetition_penalty, presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty, seed=req.seed, stop=stop,
        ignore_eos=req.ignore_eos, min_tokens=req.min_tokens, structured=_structured(req),
        logprobs=_logprobs(req), min_p=req.min_p,
        stop_token_ids=tuple(req.stop_token_ids or ()),
        include_stop_str_in_output=req.include_stop_str_in_output,
        num_assistant_tokens=req.num_assistant_tokens, max_ngram_size=req.max_ngram_size,
        assistant_confidence_threshold=req.assistant_confidence_threshold)


def _chat_logprobs(pairs: list[tuple[str, float]]) -> ChatLogprobs:
    return ChatLogprobs(content=[TokenLogprob(token=token, logprob=logprob,
                                              bytes=list(token.encode()))
                                 for token, logprob in pairs])


def _completion_logprobs(pairs: list[tuple[str, float]], offset: int = 0
                         ) -> CompletionLogprobs:
    offsets = []
    for token, _ in pairs:
        offsets.append(offset)
        offset += len(token)
    return CompletionLogprobs(tokens=[t for t, _ in pairs], token_logprobs=[lp for _, lp in pairs],
                              text_offset=offsets)


def _finish(reason: str | None, legacy_functions: bool = False) -> FinishReason | None:
    if reason == "tool_calls" and legacy_functions:
        return "function_call"
    if reason is None or reason in ("length", "tool_calls"):
        return reason  # type: ignore[return-value]
    return "stop"


def _log_unknown(req: BaseModel) -> None:
    if req.model_extra:
        # repr: a field name from a client never writes raw newlines into the log
        log.info("ignoring unknown request fields: %s",
                 ", ".join(repr(name) for name in sorted(req.model_extra)))


class _Usage:
    """Tokens of a request: each prompt counted once (``n`` choices share one), every
    choice's completion."""

    def __init__(self, n: int = 1) -> None:
        self.n = n
        self.prompts: dict[int, int] = {}
        self.completion = 0

    @property
    def prompt(self) -> int:
        return sum(self.prompts.values())

    def add(self, chunk: GenerationChunk) -> None:
        if chunk.finish_reason is not None:
            self.prompts[chunk.index // self.n] = chunk.prompt_tokens
            self.completion += chunk.completion_tokens

    def body(self) -> Usage:
        return Usage(prompt_tokens=self.prompt, completion_tokens=self.completion,
                     total_tokens=self.prompt + self.completion)


@dataclass
class Generation:
    """A validated completion or chat request, ready to run: one engine request per prompt."""

    kind: Kind
    servable: Servable
    requests: list[GenerationRequest]
    model: str  # the model id asked for (a LoRA adapter's, or the servable's)
    echo: bool = False
    include_usage: bool = False
    legacy_functions: bool = False  # answered in the legacy functions' shape

    @property
    def n(self) -> int:
        return self.requests[0].n

    @property
    def choices(self) -> int:
        return self.n * len(self.requests)

    @property
    def logprobs(self) -> bool:
        return self.requests[0].params.logprobs

    def prompt_of(self, choice: int) -> str:
        return self.requests[choice // self.n].prompt or ""

    def chunks(self) -> AsyncGenerator[GenerationChunk, None]:
        """The chunks of every prompt as one stream, as vLLM numbers them: prompt ``k``'s
        choice ``i`` is choice ``k * n + i``. Closing it aborts them all."""
        n = self.n
        if len(self.requests) == 1:  # no merging queue (and its task hop per token)
            return self.servable.generate(self.requests[0])

        async def renumbered(k: int, request: GenerationRequest
                             ) -> AsyncIterator[GenerationChunk]:
            async for chunk in self.servable.generate(request):
                yield replace(chunk, index=chunk.index + k * n) if k else chunk

        return merged([renumbered(k, r) for k, r in enumerate(self.requests)])


class OpenAIServing:
    def __init__(self, registry: Registry, metrics: Metrics, started: int,
                 names: ServedNames | None = None) -> None:
        self.registry = registry
        self.metrics = metrics
        self.started = started
        self.names = names or ServedNames()

    # -- models -----------------------------------------------------------------------------

    def _llm_servables(self) -> list[Servable]:
        return [s for s in self.registry.servables() if s.generation_input is not None]

    def _card(self, name: str, root: str | None = None, parent: str | None = None) -> ModelCard:
        return ModelCard(id=name, created=self.started, root=root or name, parent=parent)

    def models(self) -> ModelList:
        """Every LLM servable, then its LoRA adapters (parent: the servable, root: the
        adapter's folder), as vLLM lists them; then the embedding models."""
        cards, seen = [], set()
        for servable in self._llm_servables():
            cards.append(self._card(servable.name))
            cards += [self._card(alias, servable.name) for alias in self.names.aliases(
                servable.name)]  # --served_model_name
            for adapter in servable.adapters():
                if adapter.name not in seen:
                    seen.add(adapter.name)
                    cards.append(self._card(adapter.name, str(adapter.path), servable.name))
        cards += [self._card(name, s.name if name != s.name else None)
                  for s in self.registry.servables() if s.embedding_input is not None
                  for name in (s.name, *self.names.aliases(s.name))]
        return ModelList(data=cards)

    def model(self, model_id: str) -> ModelCard:
        self.llm(model_id)
        return next(c for c in self.models().data if c.id == model_id)

    def llm(self, name: str) -> tuple[Servable, str | None]:
        """The LLM servable for a model id, and the LoRA adapter the id names, if any."""
        try:
            servable, adapter = self.registry.resolve(self.names.servable(name), llm=True)
        except ServableNotFound as exc:
            ids = ", ".join(c.id for c in self.models().data) or "none"
            raise ServableNotFound(f"The model `{name}` does not exist (models: {ids})"
                                   ) from exc
        if servable.generation_input is None:
            raise ServableNotFound(f"The model `{name}` is not an LLM graph; it serves KServe "
                                   "requests only")
        return servable, adapter

    # -- LoRA adapters at run time (vLLM's endpoints) ----------------------------------------

    def _lora_engine(self, wanted: str | None) -> Engine:
        """The engine a load/unload request is for: the only LLM model with adapters, or
        the one its ``model`` field names."""
        wanted = wanted or None  # "" names no model, as an absent field
        engines: dict[int, tuple[str, Engine]] = {}
        for servable in self._llm_servables():
            if wanted is not None and servable.name != wanted:
                continue
            for engine in servable.engines.engines(servable.name):
                engines.setdefault(id(engine), (servable.name, engine))
        if not engines:
            if wanted:
                raise ServableNotFound(f"The model `{wanted}` does not exist")
            raise InvalidInput("no LLM is served", "model")
        if len(engines) > 1:
            names = ", ".join(name for name, _ in engines.values())
            raise InvalidInput(f"model: several LLMs are served ({names}); say which one the "
                               "adapter is for", "model")
        return next(iter(engines.values()))[1]

    async def load_adapter(self, req: LoadLoraAdapterRequest) -> str:
        engine = self._lora_engine(req.model)
        await asyncio.get_running_loop().run_in_executor(
            None, engine.load_adapter, req.lora_name, Path(req.lora_path))
        return f"Success: LoRA adapter '{req.lora_name}' added successfully."

    def unload_adapter(self, req: UnloadLoraAdapterRequest) -> str:
        self._lora_engine(req.model).unload_adapter(req.lora_name)
        return f"Success: LoRA adapter '{req.lora_name}' removed successfully."

    # -- embeddings --------------------------------------------------------------------------

    def _embedder(self, name: str) -> Servable:
        try:
            servable = self.registry.get(self.names.servable(name))
        except ServableNotFound as exc:
            ids = ", ".join(s.name for s in self.registry.servables()
                            if s.embedding_input is not None) or "none"
            raise ServableNotFound(f"The model `{name}` does not exist (embedding models: "
                                   f"{ids})") from exc
        if servable.embedding_input is None:
            raise InvalidInput(f"model: `{name}` is not an embedding model", "model")
        return servable

    async def embeddings(self, req: EmbeddingsRequest) -> dict[str, Any]:
        """OpenAI's embeddings: ``input`` a string or a list of them; vectors as floats or
        base64 (little-endian float32), usage counted. The body keeps numpy vectors (an
        ``EmbeddingsResponse`` in shape), for the router's orjson to write without a copy."""
        _log_unknown(req)
        with self.metrics.request(req.model, "openai"):
            if tracing.enabled():
                tracing.set_name(f"embeddings {req.model}")
                tracing.set_attributes({"gen_ai.operation.name": "embeddings",
                                        "gen_ai.provider.name": "openvino",
                                        "gen_ai.request.model": req.model})
            # the protocol model has refused empty lists and token arrays
            texts = [req.input] if isinstance(req.input, str) else req.input
            for text in texts:
                _unicode("input", text)
            servable = self._embedder(req.model)
            result = await servable.embed(texts)
            dims = result.vectors.shape[1]
            if req.dimensions is not None and req.dimensions != dims:
                raise InvalidInput(f"dimensions: model {req.model} gives {dims}, it cannot give "
                                   f"{req.dimensions}", "dimensions")
            self.metrics.tokens(req.model, result.tokens, 0)
            tracing.set_attributes({"gen_ai.usage.input_tokens": result.tokens})
        data = []
        for index, vector in enumerate(result.vectors):
            embedding: Any = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                              if req.encoding_format == "base64" else vector)
            data.append({"object": "embedding", "embedding": embedding, "index": index})
        return {"object": "list", "data": data, "model": req.model,
                "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens}}

    # -- tokenizer endpoints -----------------------------------------------------------------

    def _chat_target(self, model: str) -> tuple[Engine, ChatConfig]:
        """The engine of an LLM model id and its graph's chat settings."""
        servable, _ = self.llm(model)
        node = next((c for c in servable.calculators.values()
                     if isinstance(c, LLMCalculator)), None)
        if node is None:
            raise InvalidInput(f"model: `{model}` has no LLM node to tokenize with", "model")
        return node.engine, node.chat_config

    async def tokenize(self, req: TokenizeRequest) -> TokenizeResponse:
        _log_unknown(req)
        given = [name for name in ("prompt", "messages", "text") if getattr(req, name) is not None]
        if len(given) != 1:
            raise InvalidInput("prompt: give one of prompt, messages (vLLM) or text (OVMS)",
                               given[1] if len(given) > 1 else "prompt")
        if req.pad_to_max_length:
            raise InvalidInput("pad_to_max_length: padding is not supported", "pad_to_max_length")
        engine, config = self._chat_target(req.model)
        loop = asyncio.get_running_loop()
        if req.text is not None:
            texts = [req.text] if isinstance(req.text, str) else req.text
            for text in texts:
                _unicode("text", text)
            special = req.add_special_tokens is not False
            ids = [(await loop.run_in_executor(None, engine.tokenize, t, special))
                   [:req.max_length] for t in texts]
            return TokenizeResponse(tokens=ids[0] if isinstance(req.text, str) else ids)
        if req.messages is not None:
            settings = chat_settings_of(
                tools_of(req.tools), None, template_kwargs=req.chat_template_kwargs,
                add_generation_prompt=req.add_generation_prompt,
                continue_final_message=req.continue_final_message,
                chat_template=req.chat_template)
            messages = [m.as_dict() for m in req.messages]
            for i, message in enumerate(messages):
                _unicode(f"messages.{i}.content", message["content"])
            chat = await loop.run_in_executor(None, lambda: plan(engine, messages, settings,
                                                                 config))
            text, special = chat.prompt, req.add_special_tokens is True
        else:
            assert req.prompt is not None
            _unicode("prompt", req.prompt)
            text, special = req.prompt, req.add_special_tokens is not False
        tokens = (await loop.run_in_executor(None, engine.tokenize, text, special))[
            :req.max_length]
        strs = engine.token_texts(tokens) if req.return_token_strs else None
        return TokenizeResponse(count=len(tokens), max_model_len=engine.context_length,
                                tokens=tokens, token_strs=strs)

    async def detokenize(self, req: DetokenizeRequest) -> DetokenizeResponse:
        _log_unknown(req)
        engine, _ = self._chat_target(req.model)
        text = await asyncio.get_running_loop().run_in_executor(None, engine.detokenize,
                                                                req.tokens)
        return DetokenizeResponse(prompt=text)

    # -- completions and chat ----------------------------------------------------------------

    def prepare(self, req: CompletionRequest | ChatCompletionRequest) -> Generation:
        """A validated request ready to run (the Responses API prepares through it too)."""
        _unsupported(req)
        _log_unknown(req)
        _check_text(req)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        if isinstance(req, ChatCompletionRequest):
            kind: Kind = "chat"
            first = GenerationRequest(
                kind="chat", n=req.n,
                params=sampling_params(req, req.max_completion_tokens or req.max_tokens),
                messages=[m.as_dict() for m in req.messages], chat=chat_settings(req))
            requests = [first]
        else:
            kind = "completion"
            if req.echo and _logprobs(req):
                raise InvalidInput("echo: with logprobs it needs the prompt's logprobs, which "
                                   "are not available", "echo")
            if req.suffix:
                raise InvalidInput("suffix: insertion after a suffix is not supported by this "
                                   "model", "suffix")
            if req.best_of is not None and req.best_of != req.n:
                raise InvalidInput(f"best_of: only best_of = n ({req.n}) is supported "
                                   "(ranking extra candidates is not)", "best_of")
            prompts = req.prompt if isinstance(req.prompt, list) else [req.prompt]
            if not prompts or len(prompts) > MAX_PROMPTS:
                raise InvalidInput(f"prompt: give 1 to {MAX_PROMPTS} prompts", "prompt")
            first = GenerationRequest(kind="completion", prompt=prompts[0], n=req.n,
                                      params=sampling_params(req, req.max_tokens))
            requests = [first, *(replace(first, prompt=p) for p in prompts[1:])]
        servable, adapter = self.llm(req.model)
        # the name asked for is echoed: an adapter's, an alias (--served_model_name), the
        # servable's
        echoed = req.model if self.names.is_alias(req.model) else servable.name
        return Generation(kind, servable, [replace(r, adapter=adapter) for r in requests],
                          model=adapter or echoed,
                          echo=isinstance(req, CompletionRequest) and req.echo,
                          include_usage=include_usage,
                          legacy_functions=isinstance(req, ChatCompletionRequest)
                          and req.legacy_functions)

    async def create(self, req: CompletionRequest | ChatCompletionRequest
                     ) -> CompletionResponse | ChatCompletionResponse | AsyncIterator[Chunk]:
        """The response, or (``stream``) an iterator of chunks whose first one is already
        there: errors before the first token raise here, so they get a status code."""
        # the engine requests it makes, kept for its timings (llama.cpp's timings_per_token)
        observed = engine_requests.current()  # the trace's, when traces are on
        if observed is None and req.timings_per_token:
            observed = Observed()
        with self.metrics.request(req.model, "openai", streamed=req.stream) as tracked:
            if tracing.enabled():
                _trace_request(req)
            with observing(observed):
                generation = self.prepare(req)
                if not req.stream:
                    return await self._complete(
                        generation, observed if req.timings_per_token else None)
                chunks = self._stream(generation, tracked,
                                      observed if req.timings_per_token else None)
                first = await anext(chunks, None)
            return prepended(first, chunks)

    async def _complete(self, generation: Generation, observed: Observed | None = None
                        ) -> CompletionResponse | ChatCompletionResponse:
        count = generation.choices
        texts = [generation.prompt_of(i) if generation.echo else "" for i in range(count)]
        answers = [_Answer() for _ in range(count)]
        reasons: list[FinishReason | None] = [None] * count
        logprobs: list[list[tuple[str, float]]] = [[] for _ in range(count)]
        usage = _Usage(generation.n)
        sources: list[dict[str, Any]] = []
        chunks = generation.chunks()
        try:
            async for chunk in chunks:
                if chunk.sources and not sources:
                    sources.extend(chunk.sources)
                texts[chunk.index] += chunk.text
                answers[chunk.index].add(chunk)
                logprobs[chunk.index] += chunk.logprobs
                if chunk.finish_reason is not None:
                    reasons[chunk.index] = _finish(chunk.finish_reason,
                                                   generation.legacy_functions)
                usage.add(chunk)
        finally:
            await chunks.aclose()  # cancelled (client gone): the engine aborts
        self.metrics.tokens(generation.model, usage.prompt, usage.completion)
        common: dict[str, Any] = {"created": int(time.time()), "model": generation.model,
                                  "usage": usage.body()}
        if tracing.enabled():
            _trace_answer(generation.model, usage, reasons)
        if sources:  # a RAG graph's retrieved chunks, beside the answer
            common["sources"] = sources
        if observed is not None:
            common["timings"] = llama_timings(observed.requests())
        if generation.kind == "chat":
            return ChatCompletionResponse(
                id=f"chatcmpl-{_id()}", **common, choices=[
                    ChatChoice(index=i, message=answers[i].message(
                                   text, generation.legacy_functions),
                               logprobs=_chat_logprobs(logprobs[i]) if generation.logprobs
                               else None, finish_reason=reasons[i])
                    for i, text in enumerate(texts)])
        return CompletionResponse(
            id=f"cmpl-{_id()}", **common, choices=[
                CompletionChoice(index=i, text=text, finish_reason=_plain(reasons[i]),
                                 logprobs=_completion_logprobs(logprobs[i])
                                 if generation.logprobs else None)
                for i, text in enumerate(texts)])

    async def _stream(self, generation: Generation, tracked: Tracked,
                      observed: Observed | None = None) -> AsyncGenerator[Chunk, None]:
        """The chunks of a streamed response: echoed prompts, the chat role, a chunk per
        engine chunk with text, a finish reason or sources, then usage when asked for."""
        chat = generation.kind == "chat"
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{_id()}"
        created = int(time.time())
        offsets: dict[int, int] = {}  # completions' text_offset, per choice
        usage = _Usage(generation.n)
        reasons: dict[int, FinishReason | None] = {}

        def chunk_of(choices: list[Any], **extra: Any) -> Chunk:
            cls = ChatCompletionChunk if chat else CompletionChunk
            return cls(id=ident, created=created, model=generation.model, choices=choices,
                       **extra)

        def choice(chunk: GenerationChunk) -> Any:
            reason = _finish(chunk.finish_reason, generation.legacy_functions)
            pairs = list(chunk.logprobs)
            if chat:
                return ChatStreamChoice(
                    index=chunk.index, delta=_delta(chunk, generation.legacy_functions),
                    logprobs=_chat_logprobs(pairs) if generation.logprobs else None,
                    finish_reason=reason)
            logprobs = None
            if generation.logprobs:
                logprobs = _completion_logprobs(pairs, offsets.get(chunk.index, 0))
                offsets[chunk.index] = offsets.get(chunk.index, 0) + sum(len(t) for t, _ in pairs)
            return CompletionChoice(index=chunk.index, text=chunk.text, logprobs=logprobs,
                                    finish_reason=_plain(reason))

        chunks = generation.chunks()
        try:
            first = await anext(chunks, None)  # errors before any output raise from here
            if generation.echo:  # the prompts first, as their choices' opening text
                for i in range(generation.choices):
                    yield chunk_of([CompletionChoice(index=i, text=generation.prompt_of(i),
                                                     logprobs=None, finish_reason=None)])
            if chat:
                for i in range(generation.choices):
                    yield chunk_of([ChatStreamChoice(
                        index=i, delta=DeltaMessage(role="assistant", content=""),
                        logprobs=None, finish_reason=None)])
            async for chunk in prepended(first, chunks):
                tracked.first_output()
                usage.add(chunk)
                if chunk.finish_reason is not None:
                    reasons[chunk.index] = _finish(chunk.finish_reason,
                                                   generation.legacy_functions)
                if (chunk.text or chunk.finish_reason is not None or chunk.sources
                        or chunk.reasoning or chunk.tool_calls or chunk.logprobs):
                    extra: dict[str, Any] = {"sources": list(chunk.sources)} if chunk.sources \
                        else {}
                    if observed is not None and chunk.finish_reason is not None:
                        extra["timings"] = llama_timings(observed.requests())
                    yield chunk_of([choice(chunk)], **extra)
            self.metrics.tokens(generation.model, usage.prompt, usage.completion)
            if tracing.enabled():
                _trace_answer(generation.model, usage, list(reasons.values()), ident)
            if generation.include_usage:
                yield chunk_of([], usage=usage.body())
        except OvserveError as exc:
            tracked.fail(exc)
            # the client's mistake (a 4xx) is not the server's error
            level = logging.ERROR if shape_of(exc).http_status >= 500 else logging.INFO
            log.log(level, "stream of %s failed: %s", generation.servable.name, exc)
            raise
        finally:
            tracked.finish()
            await chunks.aclose()  # a disconnect lands here too: the engine aborts


def _trace_request(req: CompletionRequest | ChatCompletionRequest) -> None:
    """The GenAI semantic conventions' request attributes on the request's span."""
    operation = "chat" if isinstance(req, ChatCompletionRequest) else "text_completion"
    stop = [req.stop] if isinstance(req.stop, str) else req.stop
    tracing.set_name(f"{operation} {req.model}")
    tracing.set_attributes({
        "gen_ai.operation.name": operation, "gen_ai.provider.name": "openvino",
        "gen_ai.request.model": req.model,
        "gen_ai.request.max_tokens": (req.max_completion_tokens
                                      if isinstance(req, ChatCompletionRequest) else None)
        or req.max_tokens,
        "gen_ai.request.temperature": req.temperature, "gen_ai.request.top_p": req.top_p,
        "gen_ai.request.top_k": req.top_k, "gen_ai.request.seed": req.seed,
        "gen_ai.request.frequency_penalty": req.frequency_penalty,
        "gen_ai.request.presence_penalty": req.presence_penalty,
        "gen_ai.request.stop_sequences": stop or None,
        "gen_ai.request.choice.count": req.n if req.n != 1 else None,
        "gen_ai.request.stream": req.stream})


def _trace_answer(model: str, usage: _Usage, reasons: list[FinishReason | None],
                  ident: str | None = None) -> None:
    tracing.set_attributes({
        "gen_ai.response.model": model, "gen_ai.response.id": ident,
        "gen_ai.response.finish_reasons": [r for r in reasons if r is not None] or None,
        "gen_ai.usage.input_tokens": usage.prompt,
        "gen_ai.usage.output_tokens": usage.completion})


def _id() -> str:
    """A response id's tail: the request's id (X-Request-Id, as vLLM), else a new one."""
    return request_ids.current() or uuid.uuid4().hex


def _plain(reason: FinishReason | None) -> Literal["stop", "length"] | None:
    """A completion's finish reason (it never calls tools)."""
    if reason is None or reason == "length":
        return reason
    return "stop"


class _Answer:
    """One chat choice's reasoning and tool calls, gathered from its chunks."""

    def __init__(self) -> None:
        self.reasoning = ""
        self.calls: dict[int, ToolCall] = {}

    def add(self, chunk: GenerationChunk) -> None:
        self.reasoning += chunk.reasoning
        for piece in chunk.tool_calls:
            call = self.calls.get(piece.index)
            if call is None:
                call = self.calls[piece.index] = ToolCall(
                    id=piece.id or "", function=FunctionCall(name=piece.name or "",
                                                             arguments=""))
            call.function.arguments += piece.arguments

    def message(self, content: str, legacy_functions: bool = False) -> AssistantMessage:
        """The answer; ``legacy_functions``: its first call as ``function_call``."""
        calls = [self.calls[i] for i in sorted(self.calls)]
        message = AssistantMessage(content=content if content or not calls else None,
                                   reasoning_content=self.reasoning or None,
                                   reasoning=self.reasoning or None, tool_calls=calls or None)
        if legacy_functions and calls:
            message.tool_calls, message.function_call = None, calls[0].function
        return message


def _delta(chunk: GenerationChunk, legacy_functions: bool = False) -> DeltaMessage:
    """A chat chunk's delta: content, reasoning (under both names), tool call pieces
    (``legacy_functions``: the first call's as ``function_call``)."""
    calls = [ToolCallDelta(index=piece.index, id=piece.id,
                           type="function" if piece.id else None,
                           function=FunctionDelta(name=piece.name, arguments=piece.arguments))
             for piece in chunk.tool_calls] or None
    delta = DeltaMessage(content=chunk.text if chunk.text or not (calls or chunk.reasoning)
                         else None, tool_calls=calls)
    if legacy_functions and calls:
        first = [c.function for c in calls if c.index == 0]
        delta.tool_calls = None
        if first:
            delta.function_call = FunctionDelta(
                name=next((f.name for f in first if f.name), None),
                arguments="".join(f.arguments for f in first))
    if chunk.reasoning:
        delta.reasoning_content = delta.reasoning = chunk.reasoning
    return delta
