"""``build_app``: the FastAPI application serving every HTTP front end and ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ovserve import __version__
from ovserve.serving.registry import Registry
from ovserve.transport.metrics import Metrics
from ovserve.transport.rest.kserve_v2 import build_router
from ovserve.transport.rest.openai import build_router as build_openai_router
from ovserve.transport.state import ServerState

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


def build_app(
    registry: Registry, metrics: Metrics, state: ServerState, *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    app = FastAPI(title="ovserve", version=__version__, docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            return JSONResponse(
                {"error": f"request body of {length} bytes exceeds the limit of "
                          f"{max_body_bytes} bytes"}, status_code=413)
        return await call_next(request)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    app.include_router(build_router(registry, metrics, state))
    openai = build_openai_router(registry, metrics, started=int(time.time()))
    for prefix in ("/v1", "/v3"):
        app.include_router(openai, prefix=prefix)
    return app
