"""What ovserve's gRPC server interceptors share: running every call of a method inside a
block of their own (admission, the request id, the trace span)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

#: the block around one call: ``(context, request)``, the request None for a stream
Around = Callable[[grpc.aio.ServicerContext, Any], AbstractAsyncContextManager[Any]]


def around_calls(handler: Any, around: Around) -> Any:
    """``handler`` with each unary call run inside ``around(context, request)`` and each
    bidirectional stream's whole life inside ``around(context, None)``; a handler of another
    kind is returned as it is."""
    if handler.unary_unary is not None:
        behavior = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with around(context, request):
                return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer)
    if handler.stream_stream is not None:
        streaming = handler.stream_stream

        async def stream(requests: Any, context: grpc.aio.ServicerContext
                         ) -> AsyncIterator[Any]:
            async with around(context, None):
                async for response in streaming(requests, context):
                    yield response

        return grpc.stream_stream_rpc_method_handler(
            stream, handler.request_deserializer, handler.response_serializer)
    return handler
