"""The error table applied to every gRPC method once, by an interceptor: an ovserve error
becomes its status code and message; anything else is logged with its traceback and the
client gets INTERNAL with an id to find it in the log (never the exception's text). A request
message that does not parse is INVALID_ARGUMENT."""

from __future__ import annotations

import contextlib
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


class _Malformed:
    """What a request message that does not parse becomes (grpc would log a traceback and
    answer a bare error): the behavior answers INVALID_ARGUMENT instead."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _deserializer(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if parse is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:
            return _Malformed(f"the request message does not parse as protobuf: "
                              f"{type(exc).__name__}")

    return deserialize


async def _reject(context: grpc.aio.ServicerContext, request: _Malformed) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Malformed):
            await _reject(context, request)
        yield request


@contextlib.asynccontextmanager
async def _mapped(context: grpc.aio.ServicerContext, method: str) -> AsyncIterator[None]:
    """Errors of the block through the table (or logged with an id); aborts pass through."""
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        await _abort(context, method, exc)
        raise


def _unary(method: str, behavior: Callable[[Any, Any], Awaitable[Any]]
           ) -> Callable[[Any, Any], Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            await _reject(context, request)
        async with _mapped(context, method):
            return await behavior(request, context)

    return wrapped


def _streaming(method: str, behavior: Callable[[Any, Any], AsyncIterator[Any]]
               ) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def wrapped(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with _mapped(context, method):
            async for response in behavior(_checked(requests, context), context):
                yield response

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
                _unary(method, handler.unary_unary),
                _deserializer(handler.request_deserializer), handler.response_serializer)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _streaming(method, handler.stream_stream),
                _deserializer(handler.request_deserializer), handler.response_serializer)
        return handler
