"""Prometheus metrics, labelled by servable and interface, served at ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ovserve.engine import EngineRegistry
from ovserve.transport.errors import shape_of

LABELS = ("servable", "interface")


class EngineCollector(Collector):
    """Engine state read at scrape time from every engine of the server's registry."""

    def __init__(self, engines: EngineRegistry) -> None:
        self.engines = engines

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        active = GaugeMetricFamily("ovserve_engine_requests_active",
                                   "Requests queued or generating in the engine", labels=["model"])
        total = CounterMetricFamily("ovserve_engine_requests", "Requests submitted to the engine",
                                    labels=["model"])
        aborted = CounterMetricFamily("ovserve_engine_requests_aborted",
                                      "Requests aborted (client gone) and their KV cache freed",
                                      labels=["model"])
        tokens = CounterMetricFamily("ovserve_engine_generated_tokens",
                                     "Tokens generated", labels=["model"])
        cache = GaugeMetricFamily("ovserve_engine_kv_cache_usage",
                                  "Fraction of the KV cache in use", labels=["model"])
        failed = CounterMetricFamily("ovserve_engine_requests_failed",
                                     "Requests the engine failed (its process died, a step "
                                     "failed)", labels=["model"])
        restarts = CounterMetricFamily("ovserve_engine_restarts",
                                       "Engine processes restarted after they died",
                                       labels=["model"])
        ready = GaugeMetricFamily("ovserve_engine_ready",
                                  "1 when the engine takes requests, 0 while it restarts",
                                  labels=["model"])
        for engine in self.engines.engines():
            stats = engine.stats()
            failed.add_metric([stats.model], stats.failed_requests)
            restarts.add_metric([stats.model], stats.restarts)
            ready.add_metric([stats.model], int(stats.ready))
            active.add_metric([stats.model], stats.active_requests)
            total.add_metric([stats.model], stats.total_requests)
            aborted.add_metric([stats.model], stats.aborted_requests)
            tokens.add_metric([stats.model], stats.generated_tokens)
            cache.add_metric([stats.model], stats.kv_cache_usage)
        yield from (active, total, aborted, tokens, cache, failed, restarts, ready)


class Metrics:
    """One set of metrics per server (a fresh registry, so tests can build many)."""

    def __init__(self, engines: EngineRegistry) -> None:
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
        self.prompt_tokens = Counter("ovserve_prompt_tokens", "Prompt tokens of generation "
                                     "requests, per model id (LoRA adapters included)",
                                     ("model",), registry=self.registry)
        self.generated_tokens = Counter("ovserve_generated_tokens", "Tokens generated, per "
                                        "model id (LoRA adapters included)", ("model",),
                                        registry=self.registry)
        self.registry.register(EngineCollector(engines))

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

    def tokens(self, model: str, prompt: int, generated: int) -> None:
        """Count one generation request's tokens under the model id it asked for."""
        self.prompt_tokens.labels(model).inc(prompt)
        self.generated_tokens.labels(model).inc(generated)

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
