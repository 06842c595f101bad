"""Documents of a RAG graph's store over HTTP (what the web page uses; ``scripts/ingest.py``
does the same from the command line):

    GET  /v1/rag/{model}/documents            each document and its number of chunks, the
                                              graph's embedding model, how many chunks each
                                              model embedded, and the reranker (or null)
    PUT  /v1/rag/{model}/documents/{name}     the file's bytes as the body: add or update it

A document that cannot be read (unsupported type, corrupt PDF, not UTF-8) is a 400 naming it;
an unreachable store a 503. Errors are raised and answered in the OpenAI envelope, like the
rest of /v1 (``rest.errors``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ovserve.errors import InvalidInput
from ovserve.serving.registry import Registry
from ovserve.transport.openai.router import ERRORS

MAX_DOCUMENT_BYTES = 32 * 1024 * 1024


def build_router(registry: Registry) -> APIRouter:
    router = APIRouter(responses=ERRORS)  # under /v1 and /v3: OpenAI's error envelope

    @router.get("/rag/{model}/documents")
    async def documents(model: str) -> Response:
        servable = registry.get(model)
        found = await servable.documents()
        body: dict[str, Any] = {"model": model, "documents": found,
                                "chunks": sum(found.values()), **await servable.store_info()}
        return JSONResponse(body)

    @router.put("/rag/{model}/documents/{name:path}", openapi_extra={"requestBody": {
        "required": True, "description": "the document's bytes (PDF, text, Markdown)",
        "content": {"application/octet-stream": {"schema": {"type": "string",
                                                            "format": "binary"}}}}})
    async def put_document(model: str, name: str, request: Request) -> Response:
        if not name.strip() or ".." in name.split("/"):
            raise InvalidInput(f"name: {name!r} is not a document name", "name")
        data = await request.body()
        if not data:
            raise InvalidInput(f"{name}: the body is empty (send the file's bytes)")
        if len(data) > MAX_DOCUMENT_BYTES:
            raise InvalidInput(f"{name}: {len(data)} bytes is over the "
                               f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB limit")
        report = await registry.get(model).ingest(name, data)
        return JSONResponse({"model": model, "document": name, **report.as_dict()})

    return router
