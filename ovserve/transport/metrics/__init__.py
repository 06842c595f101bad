"""Prometheus metrics served at ``/metrics``: one set of measurements, three views.

- ovserve's own names (``ovserve_*``), always served.
- vLLM's names (``vllm:*``, label ``model_name``) from the LLM engines' measurements, always
  served: what routers (Gateway API Inference Extension, llm-d, KServe) and vLLM dashboards read.
- OVMS's names (``ovms_*``, labels ``name``, ``version``, ``api``, ``interface``, ``method``) when
  ``--metrics_enable`` or config.json's ``monitoring`` block turns them on (``config``).

The transports feed ``Metrics`` (``track`` / ``request`` per request, ``stream`` and its
per-request calls for ModelStreamInfer, ``tokens``, ``status``); the engines measure themselves
(``engine.measurements``). Everything is rendered at scrape time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from ovserve.engine import EngineRegistry, exemplars
from ovserve.transport.errors import shape_of
from ovserve.transport.metrics.config import MetricsConfigError, OvmsMetricsConfig
from ovserve.transport.metrics.edge import EdgeKey, EdgeMeasurements, Tracked, method_of
from ovserve.transport.metrics.views import EngineView, OvmsView, OvserveView, VllmView

__all__ = ["Metrics", "MetricsConfigError", "OvmsMetricsConfig", "Tracked", "serving_servables"]

#: Prometheus' text format (no exemplars)
TEXT = "text/plain; version=0.0.4; charset=utf-8"
#: (name, versions): versions a plain model's {number: engine}, None for a graph
Servables = Callable[[], list[tuple[str, dict[int, Any] | None]]]


def _none() -> list[tuple[str, dict[int, Any] | None]]:
    return []


class Metrics:
    """One set of metrics per server (a fresh registry, so tests can build many).
    ``servables``: the loaded servables for OVMS's view (``serving_servables(registry)``)."""

    def __init__(self, engines: EngineRegistry, ovms: OvmsMetricsConfig | None = None,
                 servables: Servables = _none) -> None:
        self.edges = EdgeMeasurements()
        self.ovms = ovms or OvmsMetricsConfig()
        self._status: dict[tuple[str, str, str, bool], int] = {}
        self._status_lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.registry.register(OvserveView(self.edges))
        self.registry.register(EngineView(engines))
        self.registry.register(VllmView(engines))
        self.ovms_view = OvmsView(self.ovms, self.edges, servables, self._status)

    # -- requests ----------------------------------------------------------------------------

    def track(self, servable: str, interface: str, *, streamed: bool = False) -> Tracked:
        """Count one request now; the returned handle records the rest once each."""
        return Tracked(self.edges, servable, interface, streamed)

    @contextmanager
    def request(self, servable: str, interface: str, *, streamed: bool = False
                ) -> Iterator[Tracked]:
        """Count and time one request; count its error, if any, by gRPC code name. A unary
        request ends with the block (also when cancelled); a ``streamed`` one ends with the
        block only when the block fails, else its stream ends it (``Tracked.finish``)."""
        tracked = self.track(servable, interface, streamed=streamed)
        try:
            yield tracked
        except Exception as exc:
            tracked.fail(exc)
            tracked.finish()
            raise
        finally:
            if not streamed:
                tracked.finish()

    def tokens(self, model: str, prompt: int, generated: int) -> None:
        """Count one generation request's tokens under the model id it asked for."""
        self.edges.tokens(model, prompt, generated)

    def status(self, servable: str, interface: str, method: str, ok: bool) -> None:
        """A KServe ModelMetadata / ModelReady call (``interface`` "grpc" or "rest")."""
        key = (servable, "gRPC" if interface.startswith("grpc") else "REST", method, ok)
        with self._status_lock:
            self._status[key] = self._status.get(key, 0) + 1

    @contextmanager
    def status_call(self, servable: str, interface: str, method: str) -> Iterator[None]:
        """Count a ModelMetadata / ModelReady call as it ends (an error: failed; no
        ``interface``: not counted)."""
        try:
            yield
        except Exception:
            if interface:
                self.status(servable, interface, method, False)
            raise
        if interface:
            self.status(servable, interface, method, True)

    # -- streams (ModelStreamInfer): one graph run, many requests ------------------------------

    def _key(self, servable: str, interface: str) -> EdgeKey:
        return EdgeKey(servable, interface, method_of(interface, True))

    @contextmanager
    def stream(self, servable: str, interface: str) -> Iterator[None]:
        """An open stream of many requests: counted while open, its length timed."""
        key = self._key(servable, interface)
        started = time.perf_counter()
        self.edges.update(key, open_streams=1, in_flight=1)
        try:
            yield
        finally:
            self.edges.update(key, open_streams=-1, in_flight=-1)
            self.edges.observe(key, "sessions", time.perf_counter() - started,
                               exemplars.current())

    def received(self, servable: str, interface: str) -> None:
        """A request arrived on a stream."""
        self.edges.update(self._key(servable, interface), received=1)

    def accepted(self, servable: str, interface: str) -> None:
        """A stream's request went into its graph."""
        self.edges.update(self._key(servable, interface), accepted=1)

    def rejected(self, servable: str, interface: str) -> None:
        """A stream's request was refused before its graph saw it."""
        self.edges.update(self._key(servable, interface), rejected=1)

    def response(self, servable: str, interface: str) -> None:
        """A stream's graph sent one output."""
        self.edges.update(self._key(servable, interface), responses=1)

    def graph_error(self, servable: str, interface: str) -> None:
        """A stream's graph reported an error in-band."""
        self.edges.update(self._key(servable, interface), graph_errors=1)

    def error(self, servable: str, interface: str, exc: BaseException) -> None:
        """Count an error by gRPC code name (a stream's in-band errors)."""
        self.edges.error(self._key(servable, interface) if interface == "grpc_stream"
                         else EdgeKey(servable, interface, method_of(interface, False)),
                         shape_of(exc).grpc_code.name)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition and its content type, in the format the scraper's ``Accept`` asks
        for: OpenMetrics (with exemplars: the latest request ids and trace ids per histogram
        bucket) for ``application/openmetrics-text``, else Prometheus' text format."""
        if "application/openmetrics-text" in accept:
            # names as they are: prometheus-client 0.26's default escaping ("underscores")
            # turns the colons of vLLM's sample names into underscores
            text = openmetrics.generate_latest(  # type: ignore[no-untyped-call]
                self.registry, escaping=openmetrics.ALLOWUTF8)
            ovms = self.ovms_view.render(openmetrics=True).encode()
            return (text.removesuffix(b"# EOF\n") + ovms + b"# EOF\n",
                    openmetrics.CONTENT_TYPE_LATEST)
        return generate_latest(self.registry) + self.ovms_view.render().encode(), TEXT


def serving_servables(registry: Any) -> Servables:
    """The loaded servables of a serving ``Registry``, as OVMS's view reads them."""
    def servables() -> list[tuple[str, dict[int, Any] | None]]:
        result: list[tuple[str, dict[int, Any] | None]] = []
        for name, state in list(registry.states.items()):
            servable = state.servable
            if servable is None:
                continue
            versions = getattr(servable, "versions", None)
            result.append((name, dict(versions) if isinstance(versions, dict) else None))
        return result

    return servables
