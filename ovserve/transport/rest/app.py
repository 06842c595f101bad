"""``build_app``: the FastAPI application serving every HTTP front end and ``/metrics``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ovserve import __version__
from ovserve.errors import (
    BodyTimeout,
    BodyTooLarge,
    HeadersTooLarge,
    OvserveError,
    Unauthenticated,
)
from ovserve.transport.admission import Admission, AdmissionControl
from ovserve.transport.auth import ApiKey, public_path
from ovserve.transport.kserve import DataPlane
from ovserve.transport.openai.router import build_root_router
from ovserve.transport.openai.router import build_router as build_openai_router
from ovserve.transport.openai.serving import OpenAIServing
from ovserve.transport.request_ids import RequestIds
from ovserve.transport.rest import errors, kserve_schemas
from ovserve.transport.rest.kserve_v2 import PROBE, build_router
from ovserve.transport.rest.rag import build_router as build_rag_router
from ovserve.transport.tracing import Tracing, TracingMiddleware

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = 30.0  # seconds a body may pause between reads (nginx: 60)
MAX_HEADERS = 100  # as nginx's and Node's defaults keep headers small
MAX_HEADER_BYTES = 64 * 1024
WEB = Path(__file__).resolve().parent / "web"


@dataclass(frozen=True)
class Cors:
    """Cross-origin access, with OVMS's flags and defaults (``--allowed_origins``,
    ``--allowed_methods``, ``--allowed_headers``: comma-separated, ``*`` for any, the default;
    ``--allow_credentials``: off). Empty ``origins``: no origin may call (no CORS header).

    Starlette's ``CORSMiddleware`` answers, as a browser needs: a preflight (``OPTIONS`` with
    ``Origin`` and ``Access-Control-Request-Method``) on any path, before routing and before the
    API key is looked at; on other responses to a request with an ``Origin``,
    ``Access-Control-Allow-Origin`` is ``*`` or, for a list of origins or with credentials,
    the request's own origin when allowed. OVMS sends its flag's text as it is on every
    response, which browsers reject for a list of several origins or ``*`` with credentials."""

    origins: tuple[str, ...] = ("*",)
    methods: tuple[str, ...] = ("*",)
    headers: tuple[str, ...] = ("*",)
    credentials: bool = False

    @staticmethod
    def split(text: str) -> tuple[str, ...]:
        """A comma-separated flag value as a tuple (blank items dropped)."""
        return tuple(item.strip() for item in text.split(",") if item.strip())


#: OVMS's defaults: any origin, method and header; no credentials
OVMS_CORS = Cors()


async def refuse(scope: Scope, receive: Receive, send: Send, exc: OvserveError,
                 headers: dict[str, str] | None = None) -> None:
    """Answer ``exc`` from a middleware, before any route: the error table's status and the
    path's error shape, as the exception handlers would."""
    response = errors.error_response(Request(scope), exc)
    response.headers.update(headers or {})
    await response(scope, receive, send)


class RequestLimits:
    """431 for more than MAX_HEADERS headers or MAX_HEADER_BYTES of them (uvicorn's httptools
    parser sets no limit); 413 for a body over the limit, whatever its framing: a declared
    Content-Length over it
    is refused before any byte is read; a chunked body fails as soon as its running total
    crosses it (``BodyTooLarge`` from ``receive``, answered by the error handlers). 408 for a
    body that stops arriving for ``body_timeout`` seconds (shorter than its Content-Length, a
    stalled upload: ``BodyTimeout``, answered with ``Connection: close``), as nginx's
    client_body_timeout; uvicorn waits for it forever. Pure ASGI, so handlers keep the receive
    channel for disconnects."""

    def __init__(self, app: ASGIApp, max_body_bytes: int,
                 body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    def _too_large(self, size: str) -> str:
        return f"request body of {size} bytes exceeds the limit of {self.max_body_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        size = sum(len(k) + len(v) for k, v in headers)
        if len(headers) > MAX_HEADERS or size > MAX_HEADER_BYTES:
            await refuse(scope, receive, send, HeadersTooLarge(
                f"request headers: {len(headers)} headers of {size} bytes; at most "
                f"{MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes"))
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await refuse(scope, receive, send, BodyTooLarge(self._too_large(length)))
            return
        seen, complete = 0, False

        async def counted() -> Message:
            nonlocal seen, complete
            if complete:  # only the disconnect is left to wait for, as long as it takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                declared = f" of {length}" if length is not None else ""
                raise BodyTimeout(f"the request body stopped arriving: {seen} bytes{declared} "
                                  f"came, then nothing for {self.body_timeout:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self._too_large(f"more than {self.max_body_bytes}"))
            return message

        await self.app(scope, counted, send)


class ApiKeyCheck:
    """401 for a request without the server's API key (``transport.auth``), in the error shape
    of its path (OpenAI's envelope under /v1 and /v3). Probes, metrics and the page's files
    pass without it."""

    def __init__(self, app: ASGIApp, api_key: ApiKey) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not public_path(scope["path"]):
            try:
                self.api_key.check(Headers(scope=scope).get("authorization"))
            except Unauthenticated as exc:
                await refuse(scope, receive, send, exc, {"WWW-Authenticate": "Bearer"})
                return
        await self.app(scope, receive, send)


def build_app(plane: DataPlane, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
              api_key: str | Sequence[str] | None = None,
              body_timeout: float = DEFAULT_BODY_TIMEOUT, cors: Cors | None = OVMS_CORS,
              admission: Admission | None = None, request_id_headers: bool = False,
              tracing: Tracing | None = None) -> FastAPI:
    """``api_key``: a key, or several (any one will do); every request but probes and metrics
    must carry it (``transport.auth``). ``cors``: cross-origin access (default OVMS's: any
    origin, method and header, no credentials); None: no CORS headers, preflights not
    answered. ``admission``: the server's limits (``transport.admission``).
    ``request_id_headers``: responses carry the request's X-Request-Id
    (``transport.request_ids``). ``tracing``: a span per inference request
    (``transport.tracing``; None: off)."""
    registry, metrics, state = plane.registry, plane.metrics, plane.state
    app = FastAPI(title="ovserve", version=__version__, docs_url=None, redoc_url=None)
    errors.install(app)
    if admission is not None:  # inside the key check: a request without the key gets 401
        app.add_middleware(AdmissionControl, admission=admission, refuse=refuse)
    if api_key:
        app.add_middleware(ApiKeyCheck, api_key=ApiKey(api_key))
    app.add_middleware(RequestLimits, max_body_bytes=max_body_bytes,
                       body_timeout=body_timeout)
    if tracing is not None:  # refusals (401, 413, 429) are in the trace too
        app.add_middleware(TracingMiddleware, tracing=tracing)
    # the request's id for everything below (refusals' log lines too)
    app.add_middleware(RequestIds, echo=request_id_headers)
    if cors is not None:  # outermost: preflights never meet the key check, refusals (401,
        # 413, 431) carry the CORS headers so a page can read them
        app.add_middleware(CORSMiddleware, allow_origins=cors.origins,
                           allow_methods=cors.methods, allow_headers=cors.headers,
                           allow_credentials=cors.credentials)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(request: Request) -> Response:
        body, content_type = metrics.render(request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    # vLLM's probes (guidellm checks /health before a run; SageMaker-style /ping) and NIM's
    @app.get("/health", response_class=Response, responses=PROBE)
    @app.get("/ping", response_class=Response, responses=PROBE)
    @app.get("/v1/health/ready", response_class=Response, responses=PROBE)
    async def health() -> Response:
        return Response(status_code=200 if state.ready else 503)

    @app.get("/v1/health/live", response_class=Response, responses=PROBE)
    async def live() -> Response:
        return Response(status_code=200)

    @app.get("/version")
    async def version() -> JSONResponse:
        return JSONResponse({"version": __version__})

    app.include_router(build_router(plane))
    serving = OpenAIServing(registry, metrics, started=int(time.time()), names=plane.names)
    openai = build_openai_router(serving)
    app.include_router(build_root_router(serving))  # vLLM's /tokenize and /detokenize
    documents = build_rag_router(registry)
    for prefix in ("/v1", "/v3"):
        app.include_router(openai, prefix=prefix)
        app.include_router(documents, prefix=prefix)
    # the web page: ask (streamed, with sources), upload documents, see the models
    app.mount("/ui", StaticFiles(directory=WEB, html=True), name="ui")

    def openapi() -> dict[str, Any]:
        """FastAPI's schema without its 422 responses: validation errors are answered 400
        (``rest.errors``), which every route declares."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            components.update(kserve_schemas.component_schemas())  # the infer request body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/ui/")

    return app
