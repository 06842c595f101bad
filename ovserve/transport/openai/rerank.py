"""Reranking and scoring over HTTP, in the shapes their clients send:

- ``POST /v3/rerank``: Cohere's rerank, as OVMS serves it (``query``, ``documents`` as strings
  or objects, ``top_n``, ``return_documents`` default false, ``rank_fields``) ->
  ``{"id", "results": [{"index", "relevance_score", "document"?}]}``;
- ``POST /v1/rerank`` (and ``/rerank``): vLLM's (``query``, ``documents`` as strings, ``top_n``
  0 for all, ``return_documents`` default true) -> ``{"id", "model", "usage", "results":
  [{"index", "document": {"text"}, "relevance_score"}]}``;
- ``POST /v1/score`` (and ``/v3/score``, ``/score``): vLLM's (``text_1`` and ``text_2``, each a
  string or a list: one against many, or pairwise) -> ``{"id", "object": "list", "created",
  "model", "data": [{"index", "object": "score", "score"}], "usage"}``.

Results are sorted by relevance, highest first; scores are the model's sigmoid (0..1), so a
pair's ``/score`` equals that document's ``relevance_score``. Bad input is a 400 naming the
field. The servable is a graph with a ``RerankCalculatorOV`` node (``model`` may be left out
when only one is served).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from ovserve.errors import InvalidInput, NodeError, ServableNotFound
from ovserve.nodes.rerank import RerankCalculator
from ovserve.protocol.rerank import RERANK_REQUEST_TAG, RerankRequest, RerankResult
from ovserve.serving.servable import Servable
from ovserve.transport.openai.serving import OpenAIServing
from ovserve.transport.rest.errors import validation_error

Body = TypeVar("Body", bound=BaseModel)


class CohereRerankRequest(BaseModel):
    """Cohere's rerank request (OVMS's ``/v3/rerank``)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: StrictStr | None = None
    query: StrictStr
    documents: list[StrictStr | dict[str, Any]]
    top_n: StrictInt | None = Field(None, ge=1)
    return_documents: StrictBool | None = None
    rank_fields: list[StrictStr] | None = Field(None, min_length=1)
    max_chunks_per_doc: StrictInt | None = Field(None, ge=1)  # accepted, as OVMS: unused


class VllmRerankRequest(BaseModel):
    """vLLM's ``/v1/rerank`` request."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: StrictStr | None = None
    query: StrictStr
    documents: list[StrictStr]
    top_n: StrictInt = 0  # 0 (or less): every document
    return_documents: StrictBool = True


class ScoreRequest(BaseModel):
    """vLLM's ``/v1/score`` request."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: StrictStr | None = None
    text_1: StrictStr | list[StrictStr]
    text_2: StrictStr | list[StrictStr]


def _ranked_text(index: int, document: str | dict[str, Any], fields: list[str] | None) -> str:
    """The text a document is ranked by: a string itself; an object's ``text`` field, or its
    ``rank_fields`` as ``field: value`` lines (Cohere's way)."""
    if isinstance(document, str):
        if fields and fields != ["text"]:
            raise InvalidInput(f"documents[{index}]: a string has no fields; rank_fields "
                               f"{fields} needs objects", "documents")
        return document
    names = fields or ["text"]
    missing = [name for name in names if name not in document]
    if missing:
        raise InvalidInput(f"documents[{index}]: has no field {missing[0]!r}"
                           + ("" if fields else " (objects are ranked by their text, or by "
                              "rank_fields)"), "documents")
    values = []
    for name in names:
        value = document[name]
        if not isinstance(value, str):
            raise InvalidInput(f"documents[{index}].{name}: must be a string", "documents")
        values.append(value)
    return values[0] if len(names) == 1 else "\n".join(
        f"{name}: {value}" for name, value in zip(names, values, strict=True))


def _order(scores: list[float], top_n: int) -> list[int]:
    """Document indices by score, highest first (ties: the earlier document), ``top_n``."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:top_n]


class RerankServing:
    def __init__(self, serving: OpenAIServing) -> None:
        self.registry = serving.registry
        self.metrics = serving.metrics

    def rerankers(self) -> list[Servable]:
        return [s for s in self.registry.servables() if self.input_of(s) is not None]

    @staticmethod
    def input_of(servable: Servable) -> str | None:
        """The graph input of a rerank graph (its REQUEST_PAYLOAD feeding a rerank node)."""
        if not any(isinstance(c, RerankCalculator) for c in servable.calculators.values()):
            return None
        return next((r.name for r in servable.graph.inputs if r.tag == RERANK_REQUEST_TAG),
                    None)

    def servable(self, model: str | None) -> Servable:
        rerankers = self.rerankers()
        names = ", ".join(s.name for s in rerankers) or "none"
        if model is None or model == "":
            if len(rerankers) == 1:
                return rerankers[0]
            raise InvalidInput(f"model: say which rerank model (rerank models: {names})",
                               "model")
        try:
            servable = self.registry.get(model)
        except ServableNotFound as exc:
            raise ServableNotFound(f"The model `{model}` does not exist (rerank models: "
                                   f"{names})") from exc
        if self.input_of(servable) is None:
            raise InvalidInput(f"model: `{model}` is not a rerank model (rerank models: "
                               f"{names})", "model")
        return servable

    async def scores(self, servable: Servable, query: str, documents: list[str]
                     ) -> RerankResult:
        if not query.strip():
            raise InvalidInput("query: must be a non-empty string", "query")
        name = self.input_of(servable)
        assert name is not None
        outputs = await servable.infer({name: RerankRequest(query, documents)})
        result = next((o for o in outputs.values() if isinstance(o, RerankResult)), None)
        if result is None:
            raise NodeError(servable.name, "produced no rerank scores")
        return result

    async def cohere(self, req: CohereRerankRequest) -> dict[str, Any]:
        servable = self.servable(req.model)
        with self.metrics.request(servable.name, "openai"):
            texts = [_ranked_text(i, d, req.rank_fields) for i, d in enumerate(req.documents)]
            result = await self.scores(servable, req.query, texts)
            self.metrics.tokens(servable.name, result.tokens, 0)
        results = []
        for index in _order(result.scores, req.top_n or len(texts)):
            item: dict[str, Any] = {"index": index, "relevance_score": result.scores[index]}
            if req.return_documents:
                document = req.documents[index]
                item["document"] = {"text": document} if isinstance(document, str) else document
            results.append(item)
        return {"id": str(uuid.uuid4()), "results": results,
                "meta": {"billed_units": {"search_units": 1}}}

    async def vllm(self, req: VllmRerankRequest) -> dict[str, Any]:
        servable = self.servable(req.model)
        with self.metrics.request(servable.name, "openai"):
            result = await self.scores(servable, req.query, req.documents)
            self.metrics.tokens(servable.name, result.tokens, 0)
        top_n = req.top_n if req.top_n > 0 else len(req.documents)
        results = []
        for index in _order(result.scores, top_n):
            item: dict[str, Any] = {"index": index, "relevance_score": result.scores[index]}
            if req.return_documents:
                item["document"] = {"text": req.documents[index]}
            results.append(item)
        return {"id": f"rerank-{uuid.uuid4().hex}", "model": req.model or servable.name,
                "usage": {"total_tokens": result.tokens}, "results": results}

    async def score(self, req: ScoreRequest) -> dict[str, Any]:
        servable = self.servable(req.model)
        firsts = [req.text_1] if isinstance(req.text_1, str) else req.text_1
        seconds = [req.text_2] if isinstance(req.text_2, str) else req.text_2
        if not firsts:
            raise InvalidInput("text_1: give at least one text", "text_1")
        if not seconds:
            raise InvalidInput("text_2: give at least one text", "text_2")
        if len(firsts) == 1:
            firsts = firsts * len(seconds)
        elif len(firsts) != len(seconds):
            raise InvalidInput(f"text_2: {len(seconds)} texts for {len(firsts)} in text_1; give "
                               "one text_1 for many, or as many of each", "text_2")
        for index, text in enumerate(firsts):
            if not text.strip():
                raise InvalidInput(f"text_1[{index}]: must be a non-empty string", "text_1")
        scores = [0.0] * len(seconds)
        tokens = 0
        with self.metrics.request(servable.name, "openai"):
            # one engine call per distinct first text, with every second text it pairs with
            groups: dict[str, list[int]] = {}
            for index, first in enumerate(firsts):
                groups.setdefault(first, []).append(index)
            for first, indices in groups.items():
                result = await self.scores(servable, first, [seconds[i] for i in indices])
                tokens += result.tokens
                for i, score in zip(indices, result.scores, strict=True):
                    scores[i] = score
            self.metrics.tokens(servable.name, tokens, 0)
        return {"id": f"score-{uuid.uuid4().hex}", "object": "list",
                "created": int(time.time()), "model": req.model or servable.name,
                "data": [{"index": i, "object": "score", "score": s}
                         for i, s in enumerate(scores)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens,
                          "completion_tokens": 0}}


def _parse(model: type[Body], data: Any) -> Body:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(RequestValidationError(exc.errors())) from None


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None


def add_rerank_routes(router: APIRouter, serving: OpenAIServing) -> None:
    """``/rerank`` and ``/score`` on a router mounted under /v1 and /v3 (and at the root):
    under /v3 ``/rerank`` is Cohere's (OVMS's), elsewhere vLLM's; ``/score`` is vLLM's."""
    rerank = RerankServing(serving)

    @router.post("/rerank", openapi_extra=_openapi_body(CohereRerankRequest,
                                                        VllmRerankRequest))
    async def rerank_route(request: Request) -> JSONResponse:
        """Cohere's rerank under /v3 (as OVMS), vLLM's under /v1 and at the root."""
        data = await _body(request)
        if request.url.path.startswith("/v3/"):
            return JSONResponse(await rerank.cohere(_parse(CohereRerankRequest, data)))
        return JSONResponse(await rerank.vllm(_parse(VllmRerankRequest, data)))

    @router.post("/score", openapi_extra=_openapi_body(ScoreRequest))
    async def score_route(request: Request) -> JSONResponse:
        """vLLM's score: text_1 against text_2."""
        return JSONResponse(await rerank.score(_parse(ScoreRequest, await _body(request))))


def _openapi_body(*models: type[BaseModel]) -> dict[str, Any]:
    schemas = [m.model_json_schema() for m in models]
    schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}
