"""Three views over one set of measurements, rendered at scrape time: ovserve's own names,
OVMS's ``ovms_*`` (with its labels, when enabled) and vLLM's ``vllm:*``.

The measurements: ``EdgeMeasurements`` (what the transports saw of each request) and each LLM
engine's ``EngineMeasurements`` and state (``EngineStats``). No view counts anything itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar as PromExemplar

from ovserve.engine import EngineRegistry
from ovserve.engine.base import EngineStats
from ovserve.engine.measurements import (
    ITL_BUCKETS,
    OVSERVE_BUCKETS,
    REQUEST_BUCKETS,
    TTFT_BUCKETS,
    Distribution,
    EngineMeasurements,
    ModelTimings,
    one_two_five,
)
from ovserve.transport.metrics.config import OvmsMetricsConfig
from ovserve.transport.metrics.edge import EDGE_BOUNDS as _EDGE_DEFAULT
from ovserve.transport.metrics.edge import OVMS_BOUNDS_US, Edge, EdgeKey, EdgeMeasurements

__all__ = ["EngineView", "OvmsView", "OvserveView", "VllmView"]


def _histogram(family: HistogramMetricFamily, labels: Sequence[str],
               distribution: Distribution, bounds: Iterable[float], scale: float = 1.0) -> None:
    """Add ``distribution`` (seconds) at ``bounds`` (in the view's unit: seconds * scale),
    each bucket with its latest exemplar (shown in the OpenMetrics exposition only)."""
    buckets: list[Any] = []
    for bound, count, exemplar in distribution.buckets_with_exemplars(
            b / scale for b in bounds):
        le = _le(bound * scale)
        buckets.append((le, count) if exemplar is None else (le, count, PromExemplar(
            exemplar.labels, exemplar.value * scale, exemplar.timestamp)))
    family.add_metric(list(labels), buckets, distribution.total * scale)


def _le(bound: float) -> str:
    if bound == float("inf"):
        return "+Inf"
    rounded = round(bound, 9)
    return str(float(rounded))


def _merge(*distributions: Distribution) -> Distribution:
    merged = Distribution(distributions[0].bounds)
    for d in distributions:
        merged.merge(d)
    return merged


class OvserveView(Collector):
    """ovserve's own request metrics, labelled by servable and interface (always served)."""

    def __init__(self, edges: EdgeMeasurements) -> None:
        self.edges = edges

    def collect(self) -> Iterator[Metric]:
        edges, tokens = self.edges.snapshot()
        labels = ["servable", "interface"]
        requests = CounterMetricFamily("ovserve_requests", "Inference requests received",
                                       labels=labels)
        errors = CounterMetricFamily("ovserve_request_errors", "Inference requests that "
                                     "failed", labels=[*labels, "code"])
        latency = HistogramMetricFamily(
            "ovserve_request_duration_seconds", "Time from request to complete response (a "
            "stream's last event)", labels=labels)
        first = HistogramMetricFamily(
            "ovserve_time_to_first_output_seconds", "Time from request to a streamed "
            "response's first output (first token)", labels=labels)
        streams = GaugeMetricFamily("ovserve_streams_in_flight", "Open streams", labels=labels)
        grouped: dict[tuple[str, str], list[Edge]] = {}
        for key, edge in edges.items():
            grouped.setdefault((key.servable, key.interface), []).append(edge)
        for pair, group in sorted(grouped.items()):
            requests.add_metric(list(pair), sum(e.received for e in group))
            codes: dict[str, int] = {}
            for edge in group:
                for code, count in edge.errors.items():
                    codes[code] = codes.get(code, 0) + count
            for code, count in sorted(codes.items()):
                errors.add_metric([*pair, code], count)
            durations = [d for e in group for d in (e.ok_duration, e.failed_duration)]
            _histogram(latency, pair, _merge(*durations), OVSERVE_BUCKETS)
            _histogram(first, pair, _merge(*(e.first_output for e in group)), OVSERVE_BUCKETS)
            streams.add_metric(list(pair), sum(e.open_streams for e in group))
        prompt = CounterMetricFamily("ovserve_prompt_tokens", "Prompt tokens of generation "
                                     "requests, per model id (LoRA adapters included)",
                                     labels=["model"])
        generated = CounterMetricFamily("ovserve_generated_tokens", "Tokens generated, per "
                                        "model id (LoRA adapters included)", labels=["model"])
        for model, (p, g) in sorted(tokens.items()):
            prompt.add_metric([model], p)
            generated.add_metric([model], g)
        yield from (requests, errors, latency, first, streams, prompt, generated)


class EngineView(Collector):
    """ovserve's engine state, read from every LLM engine of the server's registry."""

    def __init__(self, engines: EngineRegistry) -> None:
        self.engines = engines

    def collect(self) -> Iterator[Metric]:
        label = ["model"]
        families: list[tuple[Any, str, str, str]] = [
            (GaugeMetricFamily, "ovserve_engine_requests_active",
             "Requests queued or generating in the engine", "active_requests"),
            (GaugeMetricFamily, "ovserve_engine_requests_running",
             "Requests the engine has scheduled (in its batch)", "running_requests"),
            (GaugeMetricFamily, "ovserve_engine_requests_waiting",
             "Requests submitted to the engine and not scheduled yet", "waiting_requests"),
            (CounterMetricFamily, "ovserve_engine_requests", "Requests submitted to the engine",
             "total_requests"),
            (CounterMetricFamily, "ovserve_engine_requests_aborted",
             "Requests aborted (client gone) and their KV cache freed", "aborted_requests"),
            (CounterMetricFamily, "ovserve_engine_generated_tokens", "Tokens generated",
             "generated_tokens"),
            (GaugeMetricFamily, "ovserve_engine_kv_cache_usage", "Fraction of the KV cache in "
             "use", "kv_cache_usage"),
            (CounterMetricFamily, "ovserve_engine_requests_failed",
             "Requests the engine failed (its process died, a step failed)", "failed_requests"),
            (CounterMetricFamily, "ovserve_engine_restarts",
             "Engine processes restarted after they died", "restarts"),
            (GaugeMetricFamily, "ovserve_engine_ready",
             "1 when the engine takes requests, 0 while it restarts", "ready")]
        made = [(cls(name, doc, labels=label), field) for cls, name, doc, field in families]
        for engine in self.engines.engines():
            stats = engine.stats()
            for family, field in made:
                family.add_metric([stats.model], float(getattr(stats, field)))
        yield from (family for family, _ in made)


class VllmView(Collector):
    """vLLM's names and labels (``model_name`` = the engine's model folder, ``engine`` "0")
    over every LLM engine's state and measurements: what routers and vLLM dashboards read."""

    def __init__(self, engines: EngineRegistry) -> None:
        self.engines = engines

    def collect(self) -> Iterator[Metric]:
        labels = ["model_name", "engine"]

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        def counter(name: str, doc: str, extra: Sequence[str] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=[*labels, *extra])

        def histogram(name: str, doc: str) -> HistogramMetricFamily:
            return HistogramMetricFamily(name, doc, labels=labels)

        running = gauge("vllm:num_requests_running",
                        "Number of requests in model execution batches.")
        waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be "
                        "processed.")
        kv = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        gpu_kv = gauge("vllm:gpu_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."
                       " DEPRECATED: Use vllm:kv_cache_usage_perc instead.")
        prompt = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        generation = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        success = counter("vllm:request_success", "Count of successfully processed requests.",
                          ["finished_reason"])
        timings = [
            (histogram("vllm:time_to_first_token_seconds",
                       "Histogram of time to first token in seconds."),
             "time_to_first_token", TTFT_BUCKETS),
            (histogram("vllm:inter_token_latency_seconds",
                       "Histogram of inter-token latency in seconds."),
             "inter_token_latency", ITL_BUCKETS),
            (histogram("vllm:time_per_output_token_seconds",
                       "Histogram of time per output token in seconds. DEPRECATED: Use "
                       "vllm:inter_token_latency_seconds instead."),
             "inter_token_latency", ITL_BUCKETS),
            (histogram("vllm:request_time_per_output_token_seconds",
                       "Histogram of time_per_output_token_seconds per request."),
             "time_per_output_token", ITL_BUCKETS),
            (histogram("vllm:e2e_request_latency_seconds",
                       "Histogram of e2e request latency in seconds."), "e2e", REQUEST_BUCKETS),
            (histogram("vllm:request_queue_time_seconds",
                       "Histogram of time spent in WAITING phase for request."),
             "queue", REQUEST_BUCKETS),
            (histogram("vllm:request_inference_time_seconds",
                       "Histogram of time spent in RUNNING phase for request."),
             "inference", REQUEST_BUCKETS),
            (histogram("vllm:request_prefill_time_seconds",
                       "Histogram of time spent in PREFILL phase for request."),
             "prefill", REQUEST_BUCKETS),
            (histogram("vllm:request_decode_time_seconds",
                       "Histogram of time spent in DECODE phase for request."),
             "decode", REQUEST_BUCKETS)]
        lengths = [
            (histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed."),
             "request_prompt_tokens"),
            (histogram("vllm:request_generation_tokens",
                       "Number of generation tokens processed."), "request_generation_tokens"),
            (histogram("vllm:request_params_max_tokens",
                       "Histogram of the max_tokens request parameter."), "request_max_tokens")]
        lora = GaugeMetricFamily("vllm:lora_requests_info", "Running stats on lora requests.",
                                 labels=["max_lora", "waiting_lora_adapters",
                                         "running_lora_adapters"])
        for engine in self.engines.engines():
            stats: EngineStats = engine.stats()
            measured = stats.measurements or EngineMeasurements()
            values = [stats.model, "0"]
            running.add_metric(values, stats.running_requests)
            waiting.add_metric(values, stats.waiting_requests)
            kv.add_metric(values, stats.kv_cache_usage)
            gpu_kv.add_metric(values, stats.kv_cache_usage)
            prompt.add_metric(values, measured.prompt_tokens)
            generation.add_metric(values, measured.generation_tokens)
            for reason in ("stop", "length", "abort"):
                success.add_metric([*values, reason], measured.finished.get(reason, 0))
            for family, name, bounds in timings:
                _histogram(family, values, getattr(measured, name), bounds)
            token_bounds = one_two_five(stats.context_length or 2048)
            for family, name in lengths:
                _histogram(family, values, getattr(measured, name), token_bounds)
            if stats.max_loras:
                lora.add_metric([str(stats.max_loras), ",".join(stats.waiting_adapters),
                                 ",".join(stats.running_adapters)], time.time())
        yield from (running, waiting, kv, gpu_kv, prompt, generation, success)
        yield from (family for family, _, _ in timings)
        yield from (family for family, _ in lengths)
        yield lora


#: the graph label sets OVMS creates for every MediaPipe graph: (api, interface, method)
GRAPH_CALLS = (("KServe", "gRPC", "ModelInfer"), ("KServe", "gRPC", "ModelInferStream"),
               ("KServe", "REST", "ModelInfer"), ("V3", "REST", "Unary"),
               ("V3", "REST", "Stream"))
STATUS_METHODS = ("ModelMetadata", "ModelReady")
#: family -> (type, help), in OVMS's words
OVMS_FAMILIES = {
    "ovms_requests_success": ("counter", "Number of successful requests to a model or a DAG."),
    "ovms_requests_fail": ("counter", "Number of failed requests to a model or a DAG."),
    "ovms_requests_accepted": ("counter", "Number of accepted requests which ended up "
                               "inserting packet(s) into the MediaPipe graph."),
    "ovms_requests_rejected": ("counter", "Number of rejected requests which did not end up "
                               "being inserted into the MediaPipe graph."),
    "ovms_responses": ("counter", "Number of responses generated the MediaPipe graph."),
    "ovms_graph_error": ("counter", "Number of errors generated by the MediaPipe graph."),
    "ovms_current_graphs": ("gauge", "Number of MediaPipe graphs in process."),
    "ovms_graph_processing_time_us": ("histogram", "Time packet spent in the MediaPipe graph."),
    "ovms_request_time_us": ("histogram", "Processing time of requests to a model or a DAG."),
    "ovms_inference_time_us": ("histogram", "Inference execution time in the OpenVINO "
                               "backend."),
    "ovms_wait_for_infer_req_time_us": ("histogram", "Request waiting time in the scheduling "
                                        "queue."),
    "ovms_streams": ("gauge", "Number of OpenVINO execution streams."),
    "ovms_current_requests": ("gauge", "Number of inference requests currently in process."),
    "ovms_infer_req_queue_size": ("gauge", "Inference request queue size (nireq)."),
    "ovms_infer_req_active": ("gauge", "Number of currently consumed inference request from "
                              "the processing queue."),
}


class _Text:
    """OVMS's exposition as OVMS writes it: counters without ``_total``, labels sorted, ``le``
    last and whole numbers."""

    def __init__(self) -> None:
        self.samples: dict[str, list[str]] = {name: [] for name in OVMS_FAMILIES}

    def add(self, family: str, labels: dict[str, str], value: float, suffix: str = "") -> None:
        pairs = sorted((k, v) for k, v in labels.items() if k != "le")
        if "le" in labels:
            pairs.append(("le", labels["le"]))
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
        self.samples[family].append(f"{family}{suffix}{{{text}}} {_number(value)}")

    def histogram(self, family: str, labels: dict[str, str], distribution: Distribution
                  ) -> None:
        """``distribution`` (seconds) in microseconds at OVMS's buckets."""
        self.add(family, labels, distribution.count, "_count")
        self.add(family, labels, distribution.total * 1e6, "_sum")
        for bound, count in distribution.buckets(b / 1e6 for b in OVMS_BOUNDS_US):
            le = "+Inf" if bound == float("inf") else _number(round(bound * 1e6))
            self.add(family, {**labels, "le": le}, count, "_bucket")

    def render(self, on: Callable[[str], bool], openmetrics: bool = False) -> str:
        """``openmetrics``: OVMS's counters typed ``unknown`` (an OpenMetrics counter's
        samples must end in ``_total``; OVMS's names do not, and are kept)."""
        lines: list[str] = []
        for family, samples in self.samples.items():
            if samples and on(family):
                kind, doc = OVMS_FAMILIES[family]
                if openmetrics and kind == "counter":
                    kind = "unknown"
                lines += [f"# HELP {family} {doc}", f"# TYPE {family} {kind}", *samples]
        return "".join(line + "\n" for line in lines)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class OvmsView:
    """OVMS's ``ovms_*`` families with OVMS's labels, those the configuration turns on, for
    every loaded servable (a label set with nothing counted yet is there at 0, as in OVMS).
    ``servables()`` gives (name, versions) pairs: versions a plain model's, None a graph.
    Rendered as text beside prometheus-client's (its counters would gain ``_total``)."""

    def __init__(self, config: OvmsMetricsConfig, edges: EdgeMeasurements,
                 servables: Any, status: dict[tuple[str, str, str, bool], int]) -> None:
        self.config = config
        self.edges = edges
        self.servables = servables
        self.status = status  # (name, interface, method, ok) -> count

    def render(self, openmetrics: bool = False) -> str:
        if not self.config.enabled:
            return ""
        edges, _ = self.edges.snapshot()
        by_name: dict[str, list[tuple[EdgeKey, Edge]]] = {}
        for key, edge in edges.items():
            by_name.setdefault(key.servable, []).append((key, edge))
        out = _Text()
        for name, versions in self.servables():
            edges_of = by_name.get(name, [])
            if versions is None:
                self._graph(out, name, edges_of)
            else:
                self._model(out, name, versions, edges_of)
        return out.render(self.config.on, openmetrics)

    def _status(self, out: _Text, name: str, version: str | None) -> None:
        for interface in ("gRPC", "REST"):
            for method in STATUS_METHODS:
                labels = {"api": "KServe", "interface": interface, "method": method,
                          "name": name}
                # OVMS: ModelReady and every MediaPipe graph have no version label
                if version is not None and method == "ModelMetadata":
                    labels["version"] = version
                for family, ok in (("ovms_requests_success", True),
                                   ("ovms_requests_fail", False)):
                    out.add(family, labels, self.status.get((name, interface, method, ok), 0))

    def _graph(self, out: _Text, name: str, edges: list[tuple[EdgeKey, Edge]]) -> None:
        self._status(out, name, None)
        for api, interface, method in GRAPH_CALLS:
            mine = [e for k, e in edges if (k.api, k.ovms_interface, k.method)
                    == (api, interface, method)]
            labels = {"api": api, "interface": interface, "method": method, "name": name}
            out.add("ovms_requests_accepted", labels, sum(e.accepted for e in mine))
            out.add("ovms_requests_rejected", labels, sum(e.rejected for e in mine))
            out.add("ovms_responses", labels, sum(e.responses for e in mine))
            out.add("ovms_graph_error", labels, sum(e.graph_errors for e in mine))
        out.add("ovms_current_graphs", {"name": name}, sum(e.in_flight for _, e in edges))
        # OVMS times successful unary runs and whole stream sessions, per method
        for method in ("ModelInfer", "ModelInferStream", "Unary", "Stream"):
            times = [e.sessions if method == "ModelInferStream" else e.ok_duration
                     for k, e in edges if k.method == method]
            out.histogram("ovms_graph_processing_time_us", {"method": method, "name": name},
                          _merge(Distribution(_EDGE_DEFAULT), *times))

    def _model(self, out: _Text, name: str, versions: dict[int, Any],
               edges: list[tuple[EdgeKey, Edge]]) -> None:
        latest = str(max(versions)) if versions else ""
        self._status(out, name, latest)
        for number, engine in versions.items():
            version = str(number)
            mine = [(k, e) for k, e in edges if (k.version or latest) == version]
            for interface in ("gRPC", "REST"):
                calls = [e for k, e in mine if k.ovms_interface == interface]
                labels = {"api": "KServe", "interface": interface, "method": "ModelInfer",
                          "name": name, "version": version}
                out.add("ovms_requests_success", labels, sum(e.succeeded for e in calls))
                out.add("ovms_requests_fail", labels, sum(e.failed for e in calls))
                out.histogram("ovms_request_time_us",
                              {"interface": interface, "name": name, "version": version},
                              _merge(Distribution(_EDGE_DEFAULT),
                                     *(e.ok_duration for e in calls)))
            per_version = {"name": name, "version": version}
            timings = getattr(engine, "timings", None)
            if isinstance(timings, ModelTimings):
                wait, inference, active = timings.snapshot()
                out.histogram("ovms_wait_for_infer_req_time_us", per_version, wait)
                out.histogram("ovms_inference_time_us", per_version, inference)
                out.add("ovms_infer_req_active", per_version, active)
            out.add("ovms_current_requests", per_version, sum(e.in_flight for _, e in mine))
            out.add("ovms_infer_req_queue_size", per_version, int(getattr(engine, "nireq", 0)))
            out.add("ovms_streams", per_version, _streams(engine))


def _streams(engine: Any) -> int:
    """A compiled model's NUM_STREAMS (0 when it cannot be read)."""
    try:
        return int(engine.compiled.get_property("NUM_STREAMS"))
    except Exception:
        return 0
