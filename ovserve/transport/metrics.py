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
BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120)


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


class Tracked:
    """One request's metrics, recorded once each: its error (if any), its time to the first
    output (streams) and its duration, observed when its response is complete."""

    def __init__(self, metrics: Metrics, servable: str, interface: str, streamed: bool) -> None:
        self.metrics, self.servable, self.interface = metrics, servable, interface
        self.streamed = streamed
        self.started = time.perf_counter()
        self.first_seen = self.failed_once = self.finished = False
        if streamed:
            metrics.streams.labels(servable, interface).inc()

    def first_output(self) -> None:
        if not self.first_seen:
            self.first_seen = True
            self.metrics.first_output.labels(self.servable, self.interface).observe(
                time.perf_counter() - self.started)

    def fail(self, exc: BaseException) -> None:
        if not self.failed_once:
            self.failed_once = True
            self.metrics.error(self.servable, self.interface, exc)

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.metrics.latency.labels(self.servable, self.interface).observe(
            time.perf_counter() - self.started)
        if self.streamed:
            self.metrics.streams.labels(self.servable, self.interface).dec()


class Metrics:
    """One set of metrics per server (a fresh registry, so tests can build many)."""

    def __init__(self, engines: EngineRegistry) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ovserve_requests", "Inference requests received",
                                LABELS, registry=self.registry)
        self.errors = Counter("ovserve_request_errors", "Inference requests that failed",
                              (*LABELS, "code"), registry=self.registry)
        self.latency = Histogram("ovserve_request_duration_seconds",
                                 "Time from request to complete response (a stream's last "
                                 "event)", LABELS, registry=self.registry, buckets=BUCKETS)
        self.first_output = Histogram("ovserve_time_to_first_output_seconds",
                                      "Time from request to a streamed response's first "
                                      "output (first token)", LABELS, registry=self.registry,
                                      buckets=BUCKETS)
        self.streams = Gauge("ovserve_streams_in_flight", "Open streams", LABELS,
                             registry=self.registry)
        self.prompt_tokens = Counter("ovserve_prompt_tokens", "Prompt tokens of generation "
                                     "requests, per model id (LoRA adapters included)",
                                     ("model",), registry=self.registry)
        self.generated_tokens = Counter("ovserve_generated_tokens", "Tokens generated, per "
                                        "model id (LoRA adapters included)", ("model",),
                                        registry=self.registry)
        self.registry.register(EngineCollector(engines))

    def track(self, servable: str, interface: str, *, streamed: bool = False) -> Tracked:
        """Count one request now; the returned handle records the rest once each."""
        self.requests.labels(servable, interface).inc()
        return Tracked(self, servable, interface, streamed)

    @contextmanager
    def request(self, servable: str, interface: str) -> Iterator[Tracked]:
        """Count and time one unary request; count its error, if any, by gRPC code name."""
        tracked = self.track(servable, interface)
        try:
            yield tracked
        except Exception as exc:
            tracked.fail(exc)
            raise
        finally:
            tracked.finish()

    def tokens(self, model: str, prompt: int, generated: int) -> None:
        """Count one generation request's tokens under the model id it asked for."""
        self.prompt_tokens.labels(model).inc(prompt)
        self.generated_tokens.labels(model).inc(generated)

    def error(self, servable: str, interface: str, exc: BaseException) -> None:
        self.errors.labels(servable, interface, shape_of(exc).grpc_code.name).inc()

    @contextmanager
    def stream(self, servable: str, interface: str) -> Iterator[None]:
        """An open stream of many requests (ModelStreamInfer): counted while open."""
        gauge = self.streams.labels(servable, interface)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def render(self) -> bytes:
        return generate_latest(self.registry)
