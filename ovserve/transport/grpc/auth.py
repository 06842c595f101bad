"""The API key on gRPC (``transport.auth``): a call without ``authorization: Bearer <key>``
metadata is UNAUTHENTICATED, except liveness, readiness and grpc.health.v1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ovserve.errors import Unauthenticated
from ovserve.transport.auth import ApiKey, public_method


def _refusing(handler: Any, message: str) -> Any:
    """A handler of the same kind as ``handler`` that answers UNAUTHENTICATED; the request is
    not parsed (raw bytes: a message that would not parse is refused the same way)."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - abort raises

    serializer = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, None, serializer)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, None, serializer)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary, None, serializer)
    return grpc.stream_stream_rpc_method_handler(streaming, None, serializer)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or public_method(handler_call_details.method):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        try:
            self.api_key.check(metadata.get("authorization"))
        except Unauthenticated as exc:
            return _refusing(handler, str(exc))
        return handler
