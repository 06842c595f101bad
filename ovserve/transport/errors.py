"""The one table mapping ovserve errors to HTTP status, gRPC code and OpenAI error type."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from ovserve.errors import (
    BodyTimeout,
    BodyTooLarge,
    DependencyUnavailable,
    EngineError,
    EngineUnavailable,
    GraphConfigError,
    HeadersTooLarge,
    InvalidInput,
    NodeError,
    Overloaded,
    OvserveError,
    ServableNotFound,
    ServableNotReady,
    Unauthenticated,
    Unsupported,
)


@dataclass(frozen=True)
class ErrorShape:
    http_status: int
    grpc_code: grpc.StatusCode
    openai_type: str


# A node crash is the server's fault (INTERNAL / 500), not the request's: OVMS says
# INVALID_ARGUMENT here, which tells clients to fix a request that was fine.
ERROR_TABLE: dict[type[OvserveError], ErrorShape] = {
    InvalidInput: ErrorShape(400, grpc.StatusCode.INVALID_ARGUMENT, "invalid_request_error"),
    BodyTimeout: ErrorShape(408, grpc.StatusCode.DEADLINE_EXCEEDED, "invalid_request_error"),
    BodyTooLarge: ErrorShape(413, grpc.StatusCode.RESOURCE_EXHAUSTED, "invalid_request_error"),
    HeadersTooLarge: ErrorShape(431, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                "invalid_request_error"),
    Unsupported: ErrorShape(400, grpc.StatusCode.INVALID_ARGUMENT, "invalid_request_error"),
    ServableNotFound: ErrorShape(404, grpc.StatusCode.NOT_FOUND, "not_found_error"),
    ServableNotReady: ErrorShape(503, grpc.StatusCode.UNAVAILABLE, "service_unavailable"),
    NodeError: ErrorShape(500, grpc.StatusCode.INTERNAL, "server_error"),
    GraphConfigError: ErrorShape(500, grpc.StatusCode.INTERNAL, "server_error"),
    EngineError: ErrorShape(500, grpc.StatusCode.INTERNAL, "server_error"),
    EngineUnavailable: ErrorShape(503, grpc.StatusCode.UNAVAILABLE, "service_unavailable"),
    DependencyUnavailable: ErrorShape(503, grpc.StatusCode.UNAVAILABLE, "service_unavailable"),
    # past --max_concurrent_requests / --max_queued_requests: try again later (Retry-After)
    Overloaded: ErrorShape(429, grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limit_exceeded"),
    Unauthenticated: ErrorShape(401, grpc.StatusCode.UNAUTHENTICATED, "invalid_request_error"),
}
FALLBACK = ErrorShape(500, grpc.StatusCode.INTERNAL, "server_error")


def shape_of(error: BaseException) -> ErrorShape:
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return FALLBACK
