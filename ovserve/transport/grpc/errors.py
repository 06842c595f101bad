"""The error table applied to every gRPC method once, by an interceptor: an ovserve error
becomes its status code and message; anything else is logged with its traceback and the
client gets INTERNAL with an id to find it in the log (never the exception's text)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ovserve.errors import OvserveError
from ovserve.transport.errors import shape_of

log = logging.getLogger(__name__)


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    if isinstance(exc, OvserveError):
        await context.abort(shape_of(exc).grpc_code, str(exc))
    ref = uuid.uuid4().hex[:12]
    log.error("%s failed (error id %s)", method, ref, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (error id {ref})")


def _unary(method: str, behavior: Callable[[Any, Any], Awaitable[Any]]
           ) -> Callable[[Any, Any], Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # mapped through the table, or logged
            await _abort(context, method, exc)
            raise

    return wrapped


def _streaming(method: str, behavior: Callable[[Any, Any], AsyncIterator[Any]]
               ) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def wrapped(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behavior(requests, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # mapped through the table, or logged
            await _abort(context, method, exc)
            raise

    return wrapped


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(method, handler.unary_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _streaming(method, handler.stream_stream), handler.request_deserializer,
                handler.response_serializer)
        return handler
