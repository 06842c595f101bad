"""Prometheus metrics, labelled by servable and interface, served at ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ovserve.transport.errors import shape_of

LABELS = ("servable", "interface")


class Metrics:
    """One set of metrics per server (a fresh registry, so tests can build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ovserve_requests", "Inference requests received",
                                LABELS, registry=self.registry)
        self.errors = Counter("ovserve_request_errors", "Inference requests that failed",
                              (*LABELS, "code"), registry=self.registry)
        self.latency = Histogram("ovserve_request_duration_seconds",
                                 "Time from request to complete response", LABELS,
                                 registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30,
                                          60, 120))
        self.streams = Gauge("ovserve_streams_in_flight", "Open streams", LABELS,
                             registry=self.registry)

    @contextmanager
    def request(self, servable: str, interface: str) -> Iterator[None]:
        """Count and time one request; count its error, if any, by gRPC code name."""
        self.requests.labels(servable, interface).inc()
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.error(servable, interface, exc)
            raise
        finally:
            self.latency.labels(servable, interface).observe(time.perf_counter() - started)

    def error(self, servable: str, interface: str, exc: BaseException) -> None:
        self.errors.labels(servable, interface, shape_of(exc).grpc_code.name).inc()

    @contextmanager
    def stream(self, servable: str, interface: str) -> Iterator[None]:
        gauge = self.streams.labels(servable, interface)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def render(self) -> bytes:
        return generate_latest(self.registry)
