"""OpenTelemetry traces (``--otlp_traces_endpoint``, vLLM's flag; the standard ``OTEL_*``
variables for the exporter and the resource). Off by default: OpenTelemetry's SDK and exporter
are not imported then, and every hook below is one context-variable lookup.

A span per inference request (kind SERVER), a child of the client's ``traceparent`` when it
sends one (W3C Trace Context), named and annotated after the GenAI semantic conventions
(``chat MODEL``, ``gen_ai.operation.name``, ``gen_ai.request.*``, ``gen_ai.response.*``,
``gen_ai.usage.*``) plus vLLM's ``gen_ai.latency.*``; under it a span per graph node's
``process`` call (``graph.observe``), and for each engine request a ``generate`` span under the
node that made it, with ``queue``, ``prefill`` and ``decode`` children at the engine's own times
(``transport.engine_requests``). The request id (X-Request-Id) is the span's
``ovserve.request_id``. A sampled span's trace id is the ``trace_id`` exemplar on the request's
latency histograms (``engine.exemplars``), beside its request id.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from starlette.types import ASGIApp, Receive, Scope, Send

from ovserve.engine import exemplars
from ovserve.graph import observe
from ovserve.transport import request_ids
from ovserve.transport.admission import INFERENCE_METHODS, INFERENCE_PATH
from ovserve.transport.engine_requests import EngineRequest, Observed, monotonic_clock, observing
from ovserve.transport.grpc.interceptors import around_calls

__all__ = ["TraceSettings", "Tracing", "TracingInterceptor", "TracingMiddleware",
           "set_attributes", "set_name"]

log = logging.getLogger(__name__)

#: the request's span (None: traces off, or not in a request)
_span: ContextVar[Any] = ContextVar("ovserve_span", default=None)
#: the innermost span now: the request's, or a node's inside that node's processing
_inner: ContextVar[Any] = ContextVar("ovserve_inner_span", default=None)


# -- hooks the serving code calls (no cost when traces are off) ---------------------------------

def set_attributes(attributes: Mapping[str, Any]) -> None:
    """Attributes of the request's span (values None are left out)."""
    span = _span.get()
    if span is not None:
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})


def set_name(name: str) -> None:
    span = _span.get()
    if span is not None:
        span.update_name(name)


def enabled() -> bool:
    return _span.get() is not None


# -- settings ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TraceSettings:
    """Where spans go: an OTLP gRPC endpoint (``http://host:4317``; https or
    ``OTEL_EXPORTER_OTLP_TRACES_INSECURE=false`` for TLS). The exporter also reads the standard
    variables (``OTEL_EXPORTER_OTLP_TRACES_HEADERS``, ``..._TIMEOUT``, ``..._COMPRESSION``,
    ``..._CERTIFICATE``), the resource ``OTEL_SERVICE_NAME`` (default ``ovserve``) and
    ``OTEL_RESOURCE_ATTRIBUTES``, the batch processor ``OTEL_BSP_*``, the sampler
    ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``."""

    endpoint: str


class Tracing:
    """The server's tracer (one ``TracerProvider`` per server, not the global one, so tests
    can run many). ``processor``: a span processor to use instead of the OTLP exporter."""

    def __init__(self, settings: TraceSettings | None = None, processor: Any = None) -> None:
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME")
                                    or "ovserve"}).merge(OTELResourceDetector().detect())
        self.provider = TracerProvider(resource=resource)
        if processor is None:
            assert settings is not None
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint))
            log.info("traces: OTLP over gRPC to %s", settings.endpoint)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("ovserve")
        self.propagator = TraceContextTextMapPropagator()
        from opentelemetry import trace

        self._trace = trace

    def shutdown(self) -> None:
        """Send what is left and stop."""
        self.provider.shutdown()

    @contextlib.contextmanager
    def request(self, name: str, carrier: Mapping[str, str], attributes: Mapping[str, Any]
                ) -> Iterator[Any]:
        """The span of one request, current for the block: its nodes and engine requests
        become its children."""
        from opentelemetry.trace import SpanKind, Status, StatusCode

        parent = self.propagator.extract(dict(carrier))
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER,
                                      attributes=dict(attributes))
        observed = Observed(parent=_inner.get)
        span_token, inner_token = _span.set(span), _inner.set(span)
        node_token = observe.observer.set(self._node)
        context = span.get_span_context()
        trace_id = f"{context.trace_id:032x}" if context.trace_flags.sampled else ""
        try:
            with observing(observed), exemplars.tagged(trace_id=trace_id):
                yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
            raise
        finally:
            observe.observer.reset(node_token)
            _inner.reset(inner_token)
            _span.reset(span_token)
            self._engine_spans(span, observed.requests())
            span.end()

    @contextlib.contextmanager
    def _node(self, node: str, calculator: str, timestamp: int) -> Iterator[object]:
        parent = _inner.get()
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(f"node {node}", context=context, attributes={
            "ovserve.node.name": node, "ovserve.node.calculator": calculator,
            "ovserve.node.timestamp": timestamp})
        token = _inner.set(span)
        try:
            yield span
        except BaseException as exc:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
            raise
        finally:
            _inner.reset(token)
            span.end()

    def _engine_spans(self, request_span: Any, requests: list[EngineRequest]) -> None:
        """``generate`` (arrival to last token) with ``queue`` (arrival to the step that first
        scheduled it), ``prefill`` (that step to the first token) and ``decode`` (first to last
        token) under it, at the engine's own times; vLLM's latency attributes on the request."""
        monotonic_to_ns = monotonic_clock()
        for request in requests:
            parent = request.parent if request.parent is not None else request_span
            end = request.last_token or request.scheduled or request.arrived
            generate = self.tracer.start_span(
                f"generate {request.engine}".strip(),
                context=self._trace.set_span_in_context(parent),
                start_time=monotonic_to_ns(request.arrived), attributes={
                    "gen_ai.usage.input_tokens": request.prompt_tokens,
                    "gen_ai.usage.output_tokens": request.generated_tokens,
                    "ovserve.engine": request.engine})
            inside = self._trace.set_span_in_context(generate)
            phases = (("queue", request.arrived, request.scheduled),
                      ("prefill", request.scheduled, request.first_token),
                      ("decode", request.first_token, request.last_token))
            for name, start, stop in phases:
                if start is not None and stop is not None:
                    self.tracer.start_span(name, context=inside,
                                           start_time=monotonic_to_ns(start)
                                           ).end(end_time=monotonic_to_ns(stop))
            generate.end(end_time=monotonic_to_ns(end))
        if requests:
            first = requests[0]
            request_span.set_attributes({k: v for k, v in {
                "gen_ai.latency.time_in_queue": _between(first.arrived, first.scheduled),
                "gen_ai.latency.time_to_first_token": _between(first.arrived,
                                                               first.first_token),
                "gen_ai.latency.time_in_model_prefill": _between(first.scheduled,
                                                                 first.first_token),
                "gen_ai.latency.time_in_model_decode": _between(first.first_token,
                                                                first.last_token),
            }.items() if v is not None})


def _between(start: float | None, stop: float | None) -> float | None:
    return None if start is None or stop is None else max(stop - start, 0.0)


def _operation(path: str) -> str:
    """The GenAI operation of an inference route."""
    if path.endswith("chat/completions"):
        return "chat"
    if path.endswith("/completions"):
        return "text_completion"
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/responses"):
        return "chat"
    if path.endswith(("/rerank", "/score")):
        return "rerank"
    return "infer"


class TracingMiddleware:
    """A span around every inference route (as admission control counts them), current while
    the response is made, a stream until its last byte."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or not INFERENCE_PATH.fullmatch(path)):
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1")
                   for k, v in scope.get("headers", ()) if k in (b"traceparent", b"tracestate")}
        status: list[int] = []

        async def sent(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        with self.tracing.request(f"POST {path}", carrier, {
                "http.request.method": "POST", "url.path": path,
                "gen_ai.operation.name": _operation(path),
                "ovserve.request_id": request_ids.current() or ""}) as span:
            await self.app(scope, receive, sent)
            if status:
                span.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    from opentelemetry.trace import Status, StatusCode

                    span.set_status(Status(StatusCode.ERROR))


class TracingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A span around ModelInfer and ModelStreamInfer (the stream's whole life); the
    ``traceparent`` of the call's metadata honoured."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    def _span(self, method: str, context: grpc.aio.ServicerContext
              ) -> contextlib.AbstractContextManager[Any]:
        carrier = {k: v for k, v in (context.invocation_metadata() or ())
                   if k in ("traceparent", "tracestate") and isinstance(v, str)}
        name = method.rsplit("/", 1)[-1]
        return self.tracing.request(name, carrier, {
            "rpc.system": "grpc", "rpc.service": "inference.GRPCInferenceService",
            "rpc.method": name, "gen_ai.operation.name": "infer",
            "ovserve.request_id": request_ids.current() or ""})

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method not in INFERENCE_METHODS:
            return handler

        @contextlib.asynccontextmanager
        async def span(context: grpc.aio.ServicerContext, request: Any) -> AsyncIterator[None]:
            with self._span(method, context):
                # a unary call's model (a stream's requests come later, each with its own)
                set_attributes({"gen_ai.request.model": getattr(request, "model_name", None)
                                or None})
                yield

        return around_calls(handler, span)
