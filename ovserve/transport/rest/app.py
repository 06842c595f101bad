"""``build_app``: the FastAPI application serving every HTTP front end and ``/metrics``."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ovserve import __version__
from ovserve.serving.registry import Registry
from ovserve.transport.metrics import Metrics
from ovserve.transport.rest.kserve_v2 import build_router
from ovserve.transport.rest.openai import build_router as build_openai_router
from ovserve.transport.rest.rag import build_router as build_rag_router
from ovserve.transport.state import ServerState

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
WEB = Path(__file__).resolve().parent / "web"


class BodyLimit:
    """413 for a declared body over the limit. Pure ASGI (not BaseHTTPMiddleware), so
    ``request.is_disconnected()`` keeps working for the handlers behind it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                response = JSONResponse(
                    {"error": f"request body of {length} bytes exceeds the limit of "
                              f"{self.max_body_bytes} bytes"}, status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(
    registry: Registry, metrics: Metrics, state: ServerState, *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    app = FastAPI(title="ovserve", version=__version__, docs_url=None, redoc_url=None)

    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    # vLLM's probes (guidellm checks /health before a run; SageMaker-style /ping)
    @app.get("/health")
    @app.get("/ping")
    async def health() -> Response:
        return Response(status_code=200 if state.ready else 503)

    @app.get("/version")
    async def version() -> JSONResponse:
        return JSONResponse({"version": __version__})

    app.include_router(build_router(registry, metrics, state))
    openai = build_openai_router(registry, metrics, started=int(time.time()))
    documents = build_rag_router(registry)
    for prefix in ("/v1", "/v3"):
        app.include_router(openai, prefix=prefix)
        app.include_router(documents, prefix=prefix)
    # the web page: ask (streamed, with sources), upload documents, see the models
    app.mount("/ui", StaticFiles(directory=WEB, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/ui/")

    return app
