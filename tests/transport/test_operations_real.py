"""The operations flags on the real model, in a real `ovserve` process (the engine in its own
process, as `make serve` runs it): an alias, the request id echoed, llama.cpp's timings from the
engine's own times, and the trace of a streamed chat exported over OTLP/gRPC to a receiver on
loopback, with the engine's queue, prefill and decode spans under the LLM node; an OpenMetrics
scrape whose latency histograms carry the request id and the trace id as exemplars."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.transport.chat_server import MODEL, write_config
from tests.transport.metrics_text import OPENMETRICS, exemplars
from tests.transport.server import Server, start_server

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    def Export(self, request: Any, context: Any) -> Any:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name, "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                        "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                        "attributes": {a.key: a.value for a in span.attributes}})
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    spans = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(spans, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield spans, port
    server.stop(None)


@pytest.fixture(scope="module")
def server(receiver: tuple[Receiver, int], default_model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _, port = receiver
    server = start_server(
        write_config(tmp_path_factory.mktemp("ops")), "--served_model_name",
        f"{MODEL}=gpt-4o", "--enable_request_id_headers", "--otlp_traces_endpoint",
        f"http://127.0.0.1:{port}", "--max_concurrent_requests", "8",
        env={"OTEL_BSP_SCHEDULE_DELAY": "20"})
    yield server
    assert server.terminate() == 0


def test_a_traced_timed_chat_on_the_real_engine(server: Server,
                                                receiver: tuple[Receiver, int]) -> None:
    spans, _ = receiver
    client = openai.OpenAI(base_url=server.rest_url + "/v1", api_key="none")
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=12, stream=True, extra_body={"timings_per_token": True},
        extra_headers={"X-Request-Id": "real-1",
                       "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"})
    assert raw.headers["x-request-id"] == "real-1"
    chunks = list(raw.parse())
    assert {c.model for c in chunks} == {"gpt-4o"}
    assert all(c.id == "chatcmpl-real-1" for c in chunks)
    (timed,) = [c for c in chunks if (c.model_extra or {}).get("timings")]
    timings = timed.model_extra["timings"]  # type: ignore[index]
    assert 0 < timings["predicted_n"] <= 12 and timings["prompt_n"] > 5
    assert timings["prompt_ms"] > 0 and timings["predicted_per_second"] >= 0

    deadline = time.monotonic() + 30
    while True:
        roots = [s for s in spans.spans if s["name"] == "chat gpt-4o"]
        names = {s["name"] for s in spans.spans if s["trace_id"] == TRACE_ID}
        if roots and {"queue", "prefill", "decode"} <= names:
            break
        assert time.monotonic() < deadline, [s["name"] for s in spans.spans]
        time.sleep(0.05)
    (root,) = roots
    assert root["trace_id"] == TRACE_ID and root["parent"] == CLIENT_SPAN
    assert root["attributes"]["ovserve.request_id"].string_value == "real-1"
    assert root["attributes"]["gen_ai.request.model"].string_value == "gpt-4o"
    mine = {s["name"]: s for s in spans.spans if s["trace_id"] == TRACE_ID}
    node = next(s for s in mine.values() if s["name"].startswith("node "))
    generate = mine[f"generate {MODEL}"]
    assert node["parent"] == root["span_id"] and generate["parent"] == node["span_id"]
    assert generate["attributes"]["gen_ai.usage.output_tokens"].int_value == \
        timings["predicted_n"]
    for phase in ("queue", "prefill", "decode"):
        assert mine[phase]["parent"] == generate["span_id"]
        assert generate["start"] <= mine[phase]["start"] <= mine[phase]["end"] <= \
            generate["end"]


def test_an_openmetrics_scrape_links_latencies_to_the_request_and_its_trace(
        server: Server) -> None:
    """The real engine's TTFT and e2e histograms (and ovserve's request duration) carry the
    client's X-Request-Id and the trace id of its traceparent as the exemplar of the bucket
    its time fell in."""
    trace_id = "5b8efff798038103d269b633813fc60c"
    client = openai.OpenAI(base_url=server.rest_url + "/v1", api_key="none")
    reply = client.completions.create(
        model="gpt-4o", prompt="The Moon is", max_tokens=8,
        extra_body={"ignore_eos": True}, extra_headers={
            "X-Request-Id": "exemplar-7", "traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"})
    assert reply.usage is not None and reply.usage.completion_tokens == 8
    scraped = httpx.get(server.rest_url + "/metrics", headers={"Accept": OPENMETRICS})
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    wanted = {"trace_id": trace_id, "request_id": "exemplar-7"}
    for family in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
                   "vllm:request_decode_time_seconds", "ovserve_request_duration_seconds"):
        found = [(le, e, below) for _, le, e, below in exemplars(scraped.text, family)
                 if e.labels == wanted]
        assert len(found) == 1, family
        ((le, exemplar, below),) = found
        assert below < exemplar.value <= le, family
