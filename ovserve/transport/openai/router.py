"""The OpenAI-compatible API's HTTP shape (mounted under /v1 and /v3): routes, request bodies
as protocol models, JSON and SSE responses (``data: {...}`` events, ``data: [DONE]``, an error
event in-band after the first byte). ``OpenAIServing`` does the work; errors are raised and
answered by ``rest.errors`` in OpenAI's envelope.

A client that disconnects aborts its generation in the engine: a streamed response is closed
by Starlette when the socket goes; a non-streamed one is cancelled when the ASGI receive
channel says ``http.disconnect`` (vLLM's ``with_cancellation``), not by polling.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from ovserve.errors import OvserveError
from ovserve.transport.errors import shape_of
from ovserve.transport.openai.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    DetokenizeRequest,
    DetokenizeResponse,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ErrorResponse,
    LoadLoraAdapterRequest,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
    UnloadLoraAdapterRequest,
)
from ovserve.transport.openai.rerank import add_rerank_routes
from ovserve.transport.openai.responses import ResponsesRequest, ResponsesServing, events_sse
from ovserve.transport.openai.serving import OpenAIServing
from ovserve.transport.rest.disconnect import cancel_on_disconnect
from ovserve.transport.rest.errors import error_body

STATUSES = (400, 401, 404, 413, 431, 500, 503)
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in STATUSES}
#: the same for routes whose own answer is plain text (vLLM's adapter routes): errors stay JSON
JSON_ERRORS: dict[int | str, dict[str, Any]] = {status: {
    "description": "Error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}} for status in STATUSES}


class NumpyJSONResponse(JSONResponse):
    """JSON with numpy arrays in it, by orjson: the std json module spends about 6 ms on a
    response of 32 vectors of 384 floats (as long as a third of embedding them)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


async def _sse(chunks: AsyncIterator[BaseModel]) -> AsyncIterator[str]:
    try:
        async for chunk in chunks:
            yield f"data: {chunk.model_dump_json()}\n\n"
    except OvserveError as exc:  # after the first byte: in-band, then [DONE]
        yield f"data: {json.dumps(error_body(exc, shape_of(exc)))}\n\n"
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    yield "data: [DONE]\n\n"


def build_router(serving: OpenAIServing) -> APIRouter:
    # a body without a Content-Type is read as JSON, as OVMS and vLLM's clients expect
    router = APIRouter(responses=ERRORS, strict_content_type=False)

    @router.get("/models")
    async def list_models() -> ModelList:
        return serving.models()

    @router.get("/models/{model_id:path}")
    async def get_model(model_id: str) -> ModelCard:
        return serving.model(model_id)

    @router.post("/load_lora_adapter", response_class=PlainTextResponse,
                 responses=JSON_ERRORS)
    async def load_lora_adapter(body: LoadLoraAdapterRequest) -> str:
        """vLLM's run-time adapter loading: 200 with a message, 400 if the name is taken or
        the adapter cannot be used."""
        return await serving.load_adapter(body)

    @router.post("/unload_lora_adapter", response_class=PlainTextResponse,
                 responses=JSON_ERRORS)
    async def unload_lora_adapter(body: UnloadLoraAdapterRequest) -> str:
        """vLLM's run-time adapter unloading: 404 for an unknown name; requests running on
        the adapter finish."""
        return serving.unload_adapter(body)

    @router.post("/embeddings", response_model=EmbeddingsResponse)
    async def embeddings(body: EmbeddingsRequest) -> Response:
        return NumpyJSONResponse(await serving.embeddings(body))

    async def respond(request: Request, body: CompletionRequest | ChatCompletionRequest
                      ) -> Response:
        if body.stream:
            chunks = await serving.create(body)
            assert not isinstance(chunks, BaseModel)
            return StreamingResponse(_sse(chunks), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        answer = await cancel_on_disconnect(request, serving.create(body))
        if answer is None:
            return Response(status_code=499)  # nobody reads it: the client is gone
        assert isinstance(answer, BaseModel)
        return _json(answer)

    add_tokenizer_routes(router, serving)
    add_rerank_routes(router, serving)  # Cohere's /v3/rerank, vLLM's /v1/rerank and /v1/score
    responses = ResponsesServing(serving)

    @router.post("/responses")
    async def create_response(request: Request, body: ResponsesRequest) -> Response:
        """OpenAI's Responses API: a response object, or its event stream."""
        if body.stream:
            events = await responses.create(body)
            assert not isinstance(events, dict)
            return StreamingResponse(events_sse(events), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        answer = await cancel_on_disconnect(request, responses.create(body))
        if answer is None:
            return Response(status_code=499)
        assert isinstance(answer, dict)
        return JSONResponse(answer)

    @router.post("/completions", response_model=CompletionResponse)
    async def completions(request: Request, body: CompletionRequest) -> Response:
        return await respond(request, body)

    @router.post("/chat/completions", response_model=ChatCompletionResponse)
    async def chat_completions(request: Request, body: ChatCompletionRequest) -> Response:
        return await respond(request, body)

    return router


def add_tokenizer_routes(router: APIRouter, serving: OpenAIServing) -> None:
    """``/tokenize`` (OVMS's ``text``, vLLM's ``prompt`` or ``messages``) and
    ``/detokenize``."""

    @router.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> TokenizeResponse:
        return await serving.tokenize(body)

    @router.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> DetokenizeResponse:
        return await serving.detokenize(body)


def build_root_router(serving: OpenAIServing) -> APIRouter:
    """vLLM's tokenizer endpoints at the root (``/tokenize``, ``/detokenize``), and its
    ``/rerank`` and ``/score``."""
    router = APIRouter(responses=ERRORS, strict_content_type=False)
    add_tokenizer_routes(router, serving)
    add_rerank_routes(router, serving)
    return router
