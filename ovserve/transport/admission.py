"""Admission control: refuse inference requests at once past a limit, rather than queue them
without bound and let every client's latency grow (a load balancer can send them elsewhere).

- ``--max_concurrent_requests N`` (TGI's ``--max-concurrent-requests``): inference requests in
  flight across the server, every API counted (OpenAI's generation and embedding routes, KServe
  infer over REST and gRPC, a ModelStreamInfer stream as one while it is open). The N+1st is
  refused.
- ``--max_queued_requests N`` (SGLang's ``--max-queued-requests``): requests waiting for an
  engine slot (submitted to an LLM engine and not yet scheduled into its batch, summed over the
  engines). A new request is refused while N or more wait.

A refusal is ``Overloaded``: 429 with ``Retry-After`` (OpenAI's envelope under /v1 and /v3,
KServe's ``{"error": ...}`` elsewhere), RESOURCE_EXHAUSTED on gRPC (with a ``retry-after``
trailer). Readiness does not change: the server is healthy, only busy. Health, metadata, model
lists, metrics, tokenization and the web page are never limited.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from starlette.types import ASGIApp, Receive, Scope, Send

from ovserve.errors import Overloaded
from ovserve.transport.grpc.interceptors import around_calls

__all__ = [
    "INFERENCE_PATH",
    "Admission",
    "AdmissionControl",
    "AdmissionInterceptor",
    "Limits",
]

#: HTTP routes that run inference (POST): what the limits count and refuse
INFERENCE_PATH = re.compile(
    r"/v[13]/(completions|chat/completions|responses|embeddings|rerank|score)"
    r"|/(rerank|score)"  # vLLM's, at the root
    r"|/v2/models/[^/]+(/versions/[^/]+)?/infer")
#: gRPC methods that run inference
INFERENCE_METHODS = frozenset({"/inference.GRPCInferenceService/ModelInfer",
                               "/inference.GRPCInferenceService/ModelStreamInfer"})
MAX_CONCURRENT = "max_concurrent_requests"
MAX_QUEUED = "max_queued_requests"


@dataclass(frozen=True)
class Limits:
    """The limits (None: none). ``retry_after``: the seconds a refused client is told to wait."""

    max_concurrent_requests: int | None = None
    max_queued_requests: int | None = None
    retry_after: int = 1


def _no_waiting() -> int:
    return 0


class Admission:
    """Counts inference requests in flight and refuses past the limits. ``waiting``: the
    requests waiting for an engine slot now (read only with a ``max_queued_requests``)."""

    def __init__(self, limits: Limits | None = None,
                 waiting: Callable[[], int] = _no_waiting) -> None:
        self.limits = limits or Limits()
        self.waiting = waiting
        self._lock = threading.Lock()
        self.in_flight = 0
        self.admitted = 0
        #: refusals by (reason, interface)
        self.rejected: dict[tuple[str, str], int] = {}

    def enter(self, interface: str) -> None:
        """Admit one request (``leave`` when it is done), or raise ``Overloaded``."""
        limits = self.limits
        with self._lock:
            reason, message = None, ""
            if (limits.max_concurrent_requests is not None
                    and self.in_flight >= limits.max_concurrent_requests):
                reason = MAX_CONCURRENT
                message = (f"the server is at its limit of {limits.max_concurrent_requests} "
                           "concurrent requests (--max_concurrent_requests); retry later")
            elif limits.max_queued_requests is not None:
                waiting = self.waiting()
                if waiting >= limits.max_queued_requests:
                    reason = MAX_QUEUED
                    message = (f"{waiting} requests are waiting for an engine slot, the "
                               f"server's limit is {limits.max_queued_requests} "
                               "(--max_queued_requests); retry later")
            if reason is not None:
                key = (reason, interface)
                self.rejected[key] = self.rejected.get(key, 0) + 1
                raise Overloaded(message, reason, limits.retry_after)
            self.in_flight += 1
            self.admitted += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    @contextmanager
    def slot(self, interface: str) -> Iterator[None]:
        self.enter(interface)
        try:
            yield
        finally:
            self.leave()

    def snapshot(self) -> tuple[int, int, dict[tuple[str, str], int]]:
        """In flight, admitted so far, and refusals by (reason, interface)."""
        with self._lock:
            return self.in_flight, self.admitted, dict(self.rejected)


class AdmissionControl:
    """The limits on HTTP: an inference route (POST) is admitted for as long as its response
    takes (a stream until its last byte), or refused before its body is read."""

    def __init__(self, app: ASGIApp, admission: Admission,
                 refuse: Callable[[Scope, Receive, Send, Overloaded, dict[str, str]],
                                  Awaitable[None]]) -> None:
        self.app = app
        self.admission = admission
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or not INFERENCE_PATH.fullmatch(scope["path"])):
            await self.app(scope, receive, send)
            return
        interface = "rest" if scope["path"].startswith("/v2/") else "openai"
        try:
            self.admission.enter(interface)
        except Overloaded as exc:
            await self.refuse(scope, receive, send, exc, {})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave()


class AdmissionInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The limits on gRPC: ModelInfer for the call, ModelStreamInfer for as long as the stream
    is open. Refusals raise ``Overloaded`` (RESOURCE_EXHAUSTED through the error interceptor,
    which must come before this one) with a ``retry-after`` trailer."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    @asynccontextmanager
    async def _admitted(self, context: grpc.aio.ServicerContext, request: Any
                        ) -> AsyncIterator[None]:
        try:
            self.admission.enter("grpc" if request is not None else "grpc_stream")
        except Overloaded as exc:
            context.set_trailing_metadata((("retry-after", str(exc.retry_after)),))
            raise
        try:
            yield
        finally:
            self.admission.leave()

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method not in INFERENCE_METHODS:
            return handler
        return around_calls(handler, self._admitted)
