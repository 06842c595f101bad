"""Request ids: ``X-Request-Id`` in and out (vLLM's ``--enable-request-id-headers``).

Every HTTP request gets an id: the client's ``X-Request-Id`` when it sends a usable one (printable
ASCII, at most 128 characters), else a new one. It is the request's id in the log (each line
logged while the request runs carries ``[request ID]``), in OpenAI's response ids
(``chatcmpl-ID``, ``cmpl-ID``, as vLLM) and in the request's trace span. With
``--enable_request_id_headers`` the response carries it back as ``X-Request-Id``. On gRPC the
id comes from the ``x-request-id`` metadata, else the KServe request's ``id``, and goes back as
``x-request-id`` initial metadata when enabled. It is also the ``request_id`` exemplar on the
request's latency histograms (``engine.exemplars``)."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ovserve.engine import exemplars
from ovserve.transport.grpc.interceptors import around_calls

__all__ = ["RequestIdFilter", "RequestIdInterceptor", "RequestIds", "current", "usable"]

HEADER = "x-request-id"
_USABLE = re.compile(r"[\x21-\x7e]{1,128}")
_current: ContextVar[str | None] = ContextVar("ovserve_request_id", default=None)


def current() -> str | None:
    """The id of the request being served in this context (None: outside any request)."""
    return _current.get()


def usable(given: str | None) -> str:
    """``given`` when it is a usable id, else a new one."""
    if given and _USABLE.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestIds:
    """ASGI middleware: the request's id for everything below it, echoed when ``echo``."""

    def __init__(self, app: ASGIApp, echo: bool = False) -> None:
        self.app = app
        self.echo = echo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), None)
        request_id = usable(given.decode("latin-1") if given is not None else None)
        token = _current.set(request_id)
        try:
            if not self.echo:
                with exemplars.tagged(request_id=request_id):
                    await self.app(scope, receive, send)
                return

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = [(k, v) for k, v in message.get("headers", [])
                               if k.lower() != b"x-request-id"]
                    headers.append((b"x-request-id", request_id.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            with exemplars.tagged(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


class RequestIdInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The id of every gRPC call (ModelInfer, ModelStreamInfer): ``x-request-id`` metadata, else
    the KServe request's ``id`` (unary), else a new one."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo

    async def _begin(self, context: grpc.aio.ServicerContext, request: Any) -> None:
        metadata = dict(context.invocation_metadata() or ())
        given = metadata.get(HEADER) or getattr(request, "id", None) or None
        request_id = usable(given if isinstance(given, str) else None)
        _current.set(request_id)  # the call's own task: its context ends with it
        exemplars.tag(request_id=request_id)
        if self.echo:
            await context.send_initial_metadata(((HEADER, request_id),))

    @contextlib.asynccontextmanager
    async def _call(self, context: grpc.aio.ServicerContext, request: Any
                    ) -> AsyncIterator[None]:
        await self._begin(context, request)
        yield

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(
                "/inference.GRPCInferenceService/Model"):
            return handler
        return around_calls(handler, self._call)


class RequestIdFilter(logging.Filter):
    """Adds ``request_tag`` to every record: ``[request ID] `` while a request is served, ""
    otherwise (the log format puts it before the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _current.get()
        record.request_tag = f"[request {request_id}] " if request_id else ""
        return True
