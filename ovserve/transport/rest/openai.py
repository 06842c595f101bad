"""OpenAI-compatible API (mounted under /v1 and /v3): models, completions, chat completions.

Requests are validated into ``GenerationRequest`` and run on an LLM graph; responses and SSE
chunks follow OpenAI's shapes (``usage``, ``finish_reason``, the first chat chunk's role,
``stream_options.include_usage``, ``data: [DONE]``). Errors use OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}`` with 400 for invalid parameters (not
FastAPI's 422) and 404 for unknown models. A client that disconnects, streamed or not, aborts
its generation in the engine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ValidationError

from ovserve.aio import merged
from ovserve.engine.interface import Engine
from ovserve.errors import OvserveError, ServableNotFound
from ovserve.protocol.generation import GenerationChunk, GenerationRequest, SamplingParams
from ovserve.serving.registry import Registry
from ovserve.serving.servable import Servable
from ovserve.transport.errors import shape_of
from ovserve.transport.metrics import Metrics
from ovserve.transport.rest.openai_schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    SamplingFields,
)

log = logging.getLogger(__name__)
DISCONNECT_POLL_SECONDS = 0.2
MAX_PROMPTS = 64  # prompts in one /v1/completions request


class NumpyJSONResponse(JSONResponse):
    """JSON with numpy arrays in it, by orjson: the std json module spends about 6 ms on a
    response of 32 vectors of 384 floats (as long as a third of embedding them)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, type_: str, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status, message, type_, param, code)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)

    @classmethod
    def of(cls, exc: OvserveError) -> OpenAIError:
        shape = shape_of(exc)
        if isinstance(exc, ServableNotFound):
            return cls(404, str(exc), "invalid_request_error", "model", "model_not_found")
        return cls(shape.http_status, str(exc), shape.openai_type)


def _validate(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(str(p) for p in error["loc"]) or None
        raise OpenAIError(400, f"{param}: {error['msg']}" if param else error["msg"],
                          "invalid_request_error", param) from exc


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OpenAIError(400, f"the request body is not valid JSON: {exc}",
                          "invalid_request_error") from exc


def _logprobs(req: SamplingFields) -> bool:
    """Whether the request asks for the sampled tokens' logprobs. openvino-genai returns no
    alternatives, so asking for any (``top_logprobs`` > 0, completions' ``logprobs`` > 0) is a
    400 naming the field rather than an answer without them."""
    value = req.logprobs
    if value is None or value is False:
        if req.top_logprobs:
            raise OpenAIError(400, "top_logprobs: needs logprobs: true",
                              "invalid_request_error", "top_logprobs")
        return False
    if value is True:  # chat
        if req.top_logprobs:
            raise OpenAIError(400, "top_logprobs: only the sampled token's logprob is "
                              "available (0); alternatives are not", "invalid_request_error",
                              "top_logprobs")
        return True
    if isinstance(value, int) and value == 0:  # completions: the sampled tokens only
        return True
    raise OpenAIError(400, "logprobs: only the sampled token's logprob is available "
                      "(logprobs: 0 for completions, true for chat); alternatives are not",
                      "invalid_request_error", "logprobs")


def _chat_logprobs(pairs: list[tuple[str, float]]) -> dict[str, Any]:
    return {"content": [{"token": token, "logprob": logprob, "bytes": list(token.encode()),
                         "top_logprobs": []} for token, logprob in pairs]}


def _completion_logprobs(pairs: list[tuple[str, float]], offset: int = 0) -> dict[str, Any]:
    offsets = []
    for token, _ in pairs:
        offsets.append(offset)
        offset += len(token)
    return {"tokens": [t for t, _ in pairs], "token_logprobs": [lp for _, lp in pairs],
            "top_logprobs": None, "text_offset": offsets}


def _params(req: SamplingFields, max_tokens: int | None) -> SamplingParams:
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    schema: str | None = None
    if req.response_format is not None and req.response_format.type != "text":
        if req.response_format.type == "json_object":
            schema = json.dumps({"type": "object"})
        elif req.response_format.json_schema is None or not req.response_format.json_schema.schema_:
            raise OpenAIError(400, "response_format.json_schema.schema: a JSON schema is "
                              "required", "invalid_request_error", "response_format")
        else:
            schema = json.dumps(req.response_format.json_schema.schema_)
    top_k = req.top_k if req.top_k not in (None, -1, 0) else None
    return SamplingParams(
        max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, top_k=top_k,
        repetition_penalty=req.repetition_penalty, presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty, seed=req.seed, stop=stop,
        ignore_eos=req.ignore_eos, min_tokens=req.min_tokens, json_schema=schema,
        logprobs=_logprobs(req))


def _log_unknown(req: BaseModel) -> None:
    if req.model_extra:
        log.info("ignoring unknown request fields: %s", ", ".join(sorted(req.model_extra)))


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

    def body(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt, "completion_tokens": self.completion,
                "total_tokens": self.prompt + self.completion}


async def _merged(servable: Servable, generations: list[GenerationRequest]
                  ) -> AsyncGenerator[GenerationChunk, None]:
    """The chunks of several requests (a list of prompts) as one stream, as vLLM numbers
    them: prompt ``k``'s choice ``i`` is choice ``k * n + i``. Closing it aborts them all."""
    n = generations[0].n

    async def renumbered(k: int, generation: GenerationRequest
                         ) -> AsyncIterator[GenerationChunk]:
        async for chunk in servable.generate(generation):
            yield replace(chunk, index=chunk.index + k * n) if k else chunk

    chunks = merged([renumbered(k, g) for k, g in enumerate(generations)])
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()


def _finish(reason: str | None) -> str | None:
    return reason if reason in (None, "stop", "length") else "stop"


def build_router(registry: Registry, metrics: Metrics, started: int) -> APIRouter:
    router = APIRouter()

    def llm_servables() -> list[Servable]:
        return [s for s in registry.servables() if s.generation_input is not None]

    def model_card(name: str, root: str | None = None, parent: str | None = None
                   ) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": started, "owned_by": "ovserve",
                "root": root or name, "parent": parent}

    def model_cards() -> list[dict[str, Any]]:
        """Every LLM servable, then its LoRA adapters (parent: the servable, root: the
        adapter's folder), as vLLM lists them; then the embedding models."""
        cards, seen = [], set()
        embedders = [s for s in registry.servables() if s.embedding_input is not None]
        for servable in llm_servables():
            cards.append(model_card(servable.name))
            for adapter in servable.adapters():
                if adapter.name not in seen:
                    seen.add(adapter.name)
                    cards.append(model_card(adapter.name, str(adapter.path), servable.name))
        return cards + [model_card(s.name) for s in embedders]

    def llm(name: str) -> tuple[Servable, str | None]:
        """The LLM servable for a model id, and the LoRA adapter the id names, if any."""
        try:
            servable, adapter = registry.resolve(name, llm=True)
        except OvserveError as exc:
            if isinstance(exc, ServableNotFound):
                ids = ", ".join(c["id"] for c in model_cards()) or "none"
                raise OpenAIError(404, f"The model `{name}` does not exist (models: {ids})",
                                  "invalid_request_error", "model", "model_not_found") from exc
            raise
        if servable.generation_input is None:
            raise OpenAIError(404, f"The model `{name}` is not an LLM graph; it serves KServe "
                              "requests only", "invalid_request_error", "model",
                              "model_not_found")
        return servable, adapter

    @router.get("/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": model_cards()}

    @router.get("/models/{model_id:path}")
    async def get_model(model_id: str) -> Response:
        try:
            llm(model_id)
            return JSONResponse(next(c for c in model_cards() if c["id"] == model_id))
        except OpenAIError as exc:
            return exc.response()

    def lora_engine(body: Any) -> Engine:
        """The engine a load/unload request is for: the only LLM model with adapters, or
        the one its ``model`` field names."""
        wanted = body.get("model") if isinstance(body, dict) else None
        engines: dict[int, tuple[str, Engine]] = {}
        for servable in llm_servables():
            if wanted is not None and servable.name != wanted:
                continue
            for engine in servable.engines.engines(servable.name):
                engines.setdefault(id(engine), (servable.name, engine))
        if not engines:
            raise OpenAIError(404 if wanted else 400,
                              f"The model `{wanted}` does not exist" if wanted else
                              "no LLM is served", "invalid_request_error", "model",
                              "model_not_found" if wanted else None)
        if len(engines) > 1:
            names = ", ".join(name for name, _ in engines.values())
            raise OpenAIError(400, f"model: several LLMs are served ({names}); say which one "
                              "the adapter is for", "invalid_request_error", "model")
        return next(iter(engines.values()))[1]

    def lora_field(body: Any, name: str) -> str:
        value = body.get(name) if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise OpenAIError(400, f"{name}: a non-empty string is required",
                              "invalid_request_error", name)
        return value

    @router.post("/load_lora_adapter")
    async def load_lora_adapter(request: Request) -> Response:
        """vLLM's run-time adapter loading: 200 with a message, 400 if the name is taken or
        the adapter cannot be used."""
        try:
            body = await _json(request)
            name, path = lora_field(body, "lora_name"), lora_field(body, "lora_path")
            engine = lora_engine(body)
            await asyncio.get_running_loop().run_in_executor(
                None, engine.load_adapter, name, Path(path))
        except OpenAIError as exc:
            return exc.response()
        except OvserveError as exc:
            return OpenAIError.of(exc).response()
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    @router.post("/unload_lora_adapter")
    async def unload_lora_adapter(request: Request) -> Response:
        """vLLM's run-time adapter unloading: 404 for an unknown name; requests running on
        the adapter finish."""
        try:
            body = await _json(request)
            name = lora_field(body, "lora_name")
            lora_engine(body).unload_adapter(name)
        except OpenAIError as exc:
            return exc.response()
        except OvserveError as exc:
            return OpenAIError.of(exc).response()
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    @router.post("/embeddings")
    async def embeddings(request: Request) -> Response:
        """OpenAI's embeddings: ``input`` a string or a list of them; vectors as floats or
        base64 (little-endian float32), usage counted."""
        model = "?"
        try:
            body = _validate(EmbeddingsRequest, await _json(request))
            model = body.model
            _log_unknown(body)
            texts = [body.input] if isinstance(body.input, str) else body.input
            if not texts:
                raise OpenAIError(400, "input: give at least one text",
                                  "invalid_request_error", "input")
            if not all(isinstance(t, str) for t in texts):
                raise OpenAIError(400, "input: token arrays are not supported; send text",
                                  "invalid_request_error", "input")
            servable = embedder(model)
            with metrics.request(model, "openai"):
                result = await servable.embed(texts)
                dims = result.vectors.shape[1]
                if body.dimensions is not None and body.dimensions != dims:
                    raise OpenAIError(400, f"dimensions: model {model} gives {dims}, it cannot "
                                      f"give {body.dimensions}", "invalid_request_error",
                                      "dimensions")
                metrics.tokens(model, result.tokens, 0)
        except OpenAIError as exc:
            return exc.response()
        except OvserveError as exc:
            return OpenAIError.of(exc).response()
        data = []
        for index, vector in enumerate(result.vectors):
            embedding: Any = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                              if body.encoding_format == "base64" else vector)
            data.append({"object": "embedding", "embedding": embedding, "index": index})
        return NumpyJSONResponse({"object": "list", "data": data, "model": model,
                                  "usage": {"prompt_tokens": result.tokens,
                                            "total_tokens": result.tokens}})

    def embedder(name: str) -> Servable:
        try:
            servable = registry.get(name)
        except ServableNotFound as exc:
            ids = ", ".join(s.name for s in registry.servables()
                            if s.embedding_input is not None) or "none"
            raise OpenAIError(404, f"The model `{name}` does not exist (embedding models: "
                              f"{ids})", "invalid_request_error", "model",
                              "model_not_found") from exc
        if servable.embedding_input is None:
            raise OpenAIError(400, f"model: `{name}` is not an embedding model",
                              "invalid_request_error", "model")
        return servable

    @router.post("/completions")
    async def completions(request: Request) -> Response:
        return await handle(request, "completion")

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await handle(request, "chat")

    async def handle(request: Request, kind: str) -> Response:
        model, counted, echo = "?", False, False  # errors in metrics.request count there
        more: list[GenerationRequest] = []  # the other prompts of a list of prompts
        try:
            body = await _json(request)
            if kind == "chat":
                chat = _validate(ChatCompletionRequest, body)
                req: SamplingFields = chat
                params = _params(chat, chat.max_completion_tokens or chat.max_tokens)
                generation = GenerationRequest(
                    kind="chat", params=params, n=chat.n,
                    messages=[{"role": m.role, "content": m.text()} for m in chat.messages])
            else:
                completion = _validate(CompletionRequest, body)
                req = completion
                echo = completion.echo
                if echo and _logprobs(completion):
                    raise OpenAIError(400, "echo: with logprobs it needs the prompt's logprobs, "
                                      "which are not available", "invalid_request_error",
                                      "echo")
                if completion.suffix:
                    raise OpenAIError(400, "suffix: insertion after a suffix is not supported "
                                      "by this model", "invalid_request_error", "suffix")
                if completion.best_of is not None and completion.best_of != completion.n:
                    raise OpenAIError(400, f"best_of: only best_of = n ({completion.n}) is "
                                      "supported (ranking extra candidates is not)",
                                      "invalid_request_error", "best_of")
                prompts = (completion.prompt if isinstance(completion.prompt, list)
                           else [completion.prompt])
                if not prompts or len(prompts) > MAX_PROMPTS:
                    raise OpenAIError(400, f"prompt: give 1 to {MAX_PROMPTS} prompts",
                                      "invalid_request_error", "prompt")
                generation = GenerationRequest(kind="completion", prompt=prompts[0],
                                               params=_params(completion, completion.max_tokens),
                                               n=completion.n)
                more = [replace(generation, prompt=p) for p in prompts[1:]]
            model = req.model
            _log_unknown(req)
            servable, adapter = llm(req.model)
            generations = [replace(g, adapter=adapter) for g in (generation, *more)]
            generation = generations[0]
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            with metrics.request(model, "openai"):
                counted = True
                if req.stream:
                    return await stream(request, servable, generations, kind, include_usage,
                                        echo)
                return await complete(request, servable, generations, kind, echo)
        except OpenAIError as exc:
            return exc.response()
        except OvserveError as exc:
            if not counted:
                metrics.error(model, "openai", exc)
            return OpenAIError.of(exc).response()

    async def complete(request: Request, servable: Servable,
                       generations: list[GenerationRequest], kind: str,
                       echo: bool = False) -> Response:
        generation = generations[0]
        choices_count = generation.n * len(generations)
        texts = [(generations[i // generation.n].prompt or "") if echo else ""
                 for i in range(choices_count)]
        reasons: list[str | None] = [None] * choices_count
        logprobs: list[list[tuple[str, float]]] = [[] for _ in range(choices_count)]
        wanted = generation.params.logprobs
        usage = _Usage(generation.n)
        sources: list[dict[str, Any]] = []

        async def collect() -> None:
            async for chunk in _merged(servable, generations):
                if chunk.sources and not sources:
                    sources.extend(chunk.sources)
                texts[chunk.index] += chunk.text
                logprobs[chunk.index] += chunk.logprobs
                if chunk.finish_reason is not None:
                    reasons[chunk.index] = _finish(chunk.finish_reason)
                usage.add(chunk)

        task = asyncio.create_task(collect())
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if not task.done() and await request.is_disconnected():
                task.cancel()  # the client left: abort the generation in the engine
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return Response(status_code=499)
        task.result()
        metrics.tokens(generation.adapter or servable.name, usage.prompt, usage.completion)
        created = int(time.time())
        if kind == "chat":
            choices = [{"index": i, "message": {"role": "assistant", "content": text},
                        "logprobs": _chat_logprobs(logprobs[i]) if wanted else None,
                        "finish_reason": reasons[i]}
                       for i, text in enumerate(texts)]
            body = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                    "created": created, "model": generation.adapter or servable.name,
                    "choices": choices, "usage": usage.body()}
        else:
            choices = [{"index": i, "text": text,
                        "logprobs": _completion_logprobs(logprobs[i]) if wanted else None,
                        "finish_reason": reasons[i]}
                       for i, text in enumerate(texts)]
            body = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
                    "created": created, "model": generation.adapter or servable.name,
                    "choices": choices, "usage": usage.body()}
        if sources:  # a RAG graph's retrieved chunks, beside the answer
            body["sources"] = sources
        return JSONResponse(body)

    async def stream(request: Request, servable: Servable,
                     generations: list[GenerationRequest], kind: str,
                     include_usage: bool, echo: bool = False) -> Response:
        generation = generations[0]
        chunks = _merged(servable, generations)
        try:  # errors before the first byte get a status code
            first: GenerationChunk | None = await anext(chunks)
        except StopAsyncIteration:
            first = None
        except BaseException:
            await chunks.aclose()
            raise
        ident = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        model_id = generation.adapter or servable.name
        created = int(time.time())
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            data = {"id": ident, "object": obj, "created": created, "model": model_id,
                    "choices": choices, **extra}
            return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"

        offsets: dict[int, int] = {}  # completions' text_offset, per choice

        def choice(chunk: GenerationChunk) -> dict[str, Any]:
            reason = _finish(chunk.finish_reason)
            pairs = list(chunk.logprobs)
            if kind == "chat":
                return {"index": chunk.index, "delta": {"content": chunk.text},
                        "logprobs": _chat_logprobs(pairs) if generation.params.logprobs
                        else None, "finish_reason": reason}
            logprobs = None
            if generation.params.logprobs:
                logprobs = _completion_logprobs(pairs, offsets.get(chunk.index, 0))
                offsets[chunk.index] = offsets.get(chunk.index, 0) + sum(len(t) for t, _ in pairs)
            return {"index": chunk.index, "text": chunk.text, "logprobs": logprobs,
                    "finish_reason": reason}

        async def all_chunks() -> AsyncIterator[GenerationChunk]:
            if first is not None:
                yield first
            async for chunk in chunks:
                yield chunk

        async def sse() -> AsyncIterator[str]:
            usage = _Usage(generation.n)
            try:
                if echo:  # the prompts first, as their choices' opening text
                    for i in range(generation.n * len(generations)):
                        yield event([{"index": i, "text": generations[i // generation.n].prompt,
                                      "logprobs": None, "finish_reason": None}])
                if kind == "chat":
                    for i in range(generation.n * len(generations)):
                        yield event([{"index": i, "delta": {"role": "assistant", "content": ""},
                                      "logprobs": None, "finish_reason": None}])
                async for chunk in all_chunks():
                    usage.add(chunk)
                    if chunk.text or chunk.finish_reason is not None or chunk.sources:
                        extra = {"sources": list(chunk.sources)} if chunk.sources else {}
                        yield event([choice(chunk)], **extra)
                metrics.tokens(model_id, usage.prompt, usage.completion)
                if include_usage:
                    yield event([], usage=usage.body())
            except OvserveError as exc:  # after the first byte: in-band, then [DONE]
                metrics.error(model_id, "openai", exc)
                log.error("stream of %s failed: %s", servable.name, exc)
                yield f"data: {json.dumps(OpenAIError.of(exc).body())}\n\n"
            finally:
                await chunks.aclose()  # a disconnect lands here too: the engine aborts
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return router
