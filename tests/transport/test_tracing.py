"""OpenTelemetry traces: a server with --otlp_traces_endpoint exports, through OpenTelemetry's
own SDK and OTLP exporter over gRPC on loopback, to a test receiver (a TraceService of
opentelemetry-proto). A streamed chat, a KServe infer (tritonclient over gRPC) and a RAG request
each come as one trace under the client's traceparent: the request's span (GenAI attributes)
a child of the client's span, its graph nodes' spans under it, the engine's generate span under
the LLM node with queue, prefill and decode under that. And with traces off OpenTelemetry's SDK
is not imported."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc.aio as grpcclient
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from ovserve.app import ServerSettings, start
from ovserve.engine import EngineConfig
from ovserve.engine.fake import FakeEngine
from ovserve.serving.server_config import load_server_config
from tests.conftest import REPO, engine_registry
from tests.transport.fake_server import LLM, write_config
from tests.transport.server import Endpoints, free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span exported to it, as dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    async def Export(self, request: Any, context: Any) -> Any:
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name, "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                        "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                        "kind": span.kind, "service": service.get("service.name"),
                        "attributes": {a.key: _value(a.value) for a in span.attributes}})
        return trace_service_pb2.ExportTraceServiceResponse()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    server = grpc.aio.server()
    spans = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(spans, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield spans, port
    finally:
        await server.stop(None)


def rag_graph(store: Path, model: Path, embeddings: Path) -> str:
    text = (REPO / "graphs/rag/graph.pbtxt").read_text()
    return (text.replace('"../../models/all-minilm-l6-v2"', f'"{embeddings}"')
            .replace('"../../models/smollm2-135m-instruct"', f'"{model}"')
            .replace('"../../data/chroma"', f'"{store}"'))


@asynccontextmanager
async def traced_server(root: Path, monkeypatch: pytest.MonkeyPatch, endpoint: str,
                        embeddings: Path) -> AsyncIterator[Endpoints]:
    """``make serve``'s python_model and LLM on a fake engine, and the RAG graph (real
    embeddings, the fake LLM), exporting traces to ``endpoint``."""
    config = write_config(root)
    (root / "rag").mkdir()
    (root / "rag/graph.pbtxt").write_text(rag_graph(root / "store", root / "model", embeddings))
    data = json.loads(config.read_text())
    data["mediapipe_config_list"].append({"name": "rag", "base_path": "rag"})
    config.write_text(json.dumps(data))
    monkeypatch.setenv("OVSERVE_MODEL_PATH", str(root / "model"))
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")  # batches go out at once
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ovserve-under-test")

    def factory(engine_config: EngineConfig) -> FakeEngine:
        return FakeEngine(LLM)

    settings = ServerSettings(entries=load_server_config(config), host="127.0.0.1",
                              grpc_port=free_port(), rest_port=free_port(), grace_seconds=1,
                              otlp_traces_endpoint=endpoint)
    running = await start(settings, engine_registry(factory=factory))
    assert settings.grpc_port is not None and settings.rest_port is not None
    try:
        yield Endpoints(grpc_port=settings.grpc_port, rest_port=settings.rest_port)
    finally:
        await running.stop()


async def trace_of(spans: Receiver, root_name: str, count: int, seconds: float = 30
                   ) -> list[dict[str, Any]]:
    """The spans of the trace whose request span is ``root_name``, once ``count`` came."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        roots = [s for s in spans.spans if s["name"] == root_name]
        if roots:
            mine = descendants(spans.spans, roots[-1]["span_id"])
            if len(mine) + 1 >= count:
                return [roots[-1], *mine]
        assert asyncio.get_running_loop().time() < deadline, (
            f"no trace of {root_name} with {count} spans: {[s['name'] for s in spans.spans]}")
        await asyncio.sleep(0.05)


def descendants(spans: list[dict[str, Any]], span_id: str) -> list[dict[str, Any]]:
    children = [s for s in spans if s["parent"] == span_id]
    return children + [d for c in children for d in descendants(spans, c["span_id"])]


def by_name(trace: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in trace}


def check_engine_spans(named: dict[str, dict[str, Any]], node: str, tokens: int) -> None:
    """generate under the node, queue / prefill / decode under generate, in order."""
    generate = named[f"generate {LLM}"]
    assert generate["parent"] == named[node]["span_id"]
    assert generate["attributes"]["gen_ai.usage.output_tokens"] == tokens
    phases = [named[p] for p in ("queue", "prefill", "decode")]
    assert all(p["parent"] == generate["span_id"] for p in phases)
    assert phases[0]["start"] <= phases[1]["start"] <= phases[2]["start"] <= phases[2]["end"]
    assert generate["start"] <= phases[0]["start"] and phases[2]["end"] <= generate["end"]


async def test_traces_of_a_chat_stream_a_kserve_infer_and_a_rag_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedding_model_dir: Path) -> None:
    async with receiver() as (spans, port), traced_server(
            tmp_path, monkeypatch, f"http://127.0.0.1:{port}", embedding_model_dir) as server:
        headers = {"traceparent": TRACEPARENT}
        async with openai.AsyncOpenAI(base_url=server.rest_url + "/v1", api_key="none",
                                      default_headers=headers) as ai:
            stream = await ai.chat.completions.create(
                model=LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                temperature=0.5, stream=True, extra_body={"ignore_eos": True})
            assert "".join([c.choices[0].delta.content or "" async for c in stream
                            if c.choices]) == "w0 w1 w2 w3"
            trace = await trace_of(spans, f"chat {LLM}", 6)
            named = by_name(trace)
            request = named[f"chat {LLM}"]
            assert {s["trace_id"] for s in trace} == {TRACE_ID}  # the client's trace
            assert request["parent"] == CLIENT_SPAN and request["kind"] == 2  # SERVER
            assert request["service"] == "ovserve-under-test"
            attributes = request["attributes"]
            assert attributes["gen_ai.operation.name"] == "chat"
            assert attributes["gen_ai.request.model"] == LLM
            assert attributes["gen_ai.response.model"] == LLM
            assert attributes["gen_ai.request.max_tokens"] == 4
            assert attributes["gen_ai.request.temperature"] == 0.5
            assert attributes["gen_ai.usage.output_tokens"] == 4
            assert attributes["gen_ai.response.finish_reasons"] == ["length"]
            assert attributes["http.response.status_code"] == 200
            assert attributes["gen_ai.latency.time_to_first_token"] >= 0
            assert len(attributes["ovserve.request_id"]) == 32
            (node,) = [s for s in trace if s["name"].startswith("node ")]
            assert node["parent"] == request["span_id"]
            assert node["attributes"]["ovserve.node.calculator"] == "HttpLLMCalculator"
            check_engine_spans(named, node["name"], 4)

            # a RAG request: the retriever's and the LLM's node spans under the request's
            async with httpx.AsyncClient(base_url=server.rest_url, timeout=120) as http:
                reply = await http.put("/v1/rag/rag/documents/volcano.md", content=(
                    b"# Volcanoes\n\nMount Etna in Sicily is an active volcano.\n"))
                assert reply.status_code == 200, reply.text
            answer = await ai.chat.completions.create(
                model="rag", messages=[{"role": "user", "content": "Where is Etna?"}],
                max_tokens=3, extra_headers={"X-Request-Id": "rag-1"})
            assert answer.choices[0].message.content
            trace = await trace_of(spans, "chat rag", 7)
            named = by_name(trace)
            assert {s["trace_id"] for s in trace} == {TRACE_ID}
            assert named["chat rag"]["attributes"]["ovserve.request_id"] == "rag-1"
            retriever, llm = named["node retriever"], named["node llm"]
            assert retriever["parent"] == llm["parent"] == named["chat rag"]["span_id"]
            assert retriever["end"] <= llm["start"]  # the LLM node ran on what it retrieved
            check_engine_spans(named, "node llm", 3)

        # a KServe infer over gRPC (tritonclient), its traceparent in the metadata
        triton = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            tensor = grpcclient.InferInput("pre_prompt", [1], "BYTES")
            tensor.set_data_from_numpy(np.array([b"hi"], dtype=np.object_))
            result = await triton.infer("python_model", [tensor], headers=headers)
            assert result.as_numpy("completion") is not None
        finally:
            await triton.close()
        trace = await trace_of(spans, "infer python_model", 2)
        named = by_name(trace)
        infer = named["infer python_model"]
        assert infer["parent"] == CLIENT_SPAN and infer["trace_id"] == TRACE_ID
        assert infer["attributes"]["rpc.method"] == "ModelInfer"
        assert infer["attributes"]["gen_ai.request.model"] == "python_model"
        nodes = [s for s in trace if s["name"].startswith("node ")]
        assert nodes and all(s["parent"] == infer["span_id"] for s in nodes)

        # without a traceparent: a trace of its own, its request span a root
        async with httpx.AsyncClient(base_url=server.rest_url) as http:
            reply = await http.post("/v1/completions", json={"model": LLM, "prompt": "x",
                                                              "max_tokens": 1})
            assert reply.status_code == 200
        (mine,) = (await trace_of(spans, f"text_completion {LLM}", 1))[:1]
        assert mine["parent"] == "" and mine["trace_id"] != TRACE_ID


def test_no_opentelemetry_import_when_off(tmp_path: Path) -> None:
    """A server without --otlp_traces_endpoint serves a chat and a KServe infer without
    importing OpenTelemetry's SDK, exporter or protos (FastAPI imports the API itself)."""
    code = f"""
import asyncio, sys, httpx
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from ovserve.app import ServerSettings, start
from ovserve.engine import EngineRegistry
from ovserve.engine.fake import FakeEngine
from ovserve.serving.server_config import load_server_config
from tests.transport.fake_server import LLM, write_config
from tests.transport.server import free_port

async def main():
    config = write_config(Path({str(tmp_path)!r}))
    port = free_port()
    running = await start(ServerSettings(entries=load_server_config(config), host="127.0.0.1",
                                         grpc_port=None, rest_port=port, grace_seconds=1),
                          EngineRegistry(lambda c: FakeEngine(LLM)))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{{port}}") as http:
        reply = await http.post("/v1/chat/completions", json={{"model": LLM, "max_tokens": 2,
                                "messages": [{{"role": "user", "content": "hi"}}]}})
        assert reply.status_code == 200, reply.text
        reply = await http.post("/v2/models/python_model/infer", json={{"inputs": [{{
            "name": "pre_prompt", "shape": [1], "datatype": "BYTES", "data": ["hi"]}}]}})
        assert reply.status_code == 200, reply.text
    await running.stop()
    print(sorted(m for m in sys.modules if m.startswith(
        ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto"))))

asyncio.run(main())
"""
    env = {**os.environ, "OVSERVE_MODEL_PATH": str(tmp_path / "model"),
           "OVSERVE_MAX_TOKENS": "400"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_otel_sdk_disabled_turns_traces_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from ovserve.app import _tracing

    assert _tracing(None) is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert _tracing("http://127.0.0.1:4317") is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    tracing = _tracing("http://127.0.0.1:4317")
    assert tracing is not None
    tracing.shutdown()


async def test_a_model_stream_infer_is_one_span_with_its_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedding_model_dir: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A ModelStreamInfer stream (the seed servable) is one span under the client's, with a
    node span per processing; a stream the client cancels ends its span too, cleanly."""
    import struct

    from tritonclient.grpc import service_pb2, service_pb2_grpc

    async with receiver() as (spans, port), traced_server(
            tmp_path, monkeypatch, f"http://127.0.0.1:{port}", embedding_model_dir) as server:
        for cancel in (False, True):
            channel = grpc.aio.insecure_channel(server.grpc_url)
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            queue: asyncio.Queue[Any] = asyncio.Queue()

            async def sent(queue: asyncio.Queue[Any] = queue) -> Any:
                while (item := await queue.get()) is not None:
                    yield item

            call = stub.ModelStreamInfer(sent(), metadata=(("traceparent", TRACEPARENT),))
            request = service_pb2.ModelInferRequest(model_name="python_model", id=f"s{cancel}")
            request.inputs.add(name="pre_prompt", datatype="BYTES", shape=[1])
            request.raw_input_contents.append(struct.pack("<I", 2) + b"hi")
            await queue.put(request)
            while True:
                response = await call.read()
                if cancel or response.infer_response.outputs[0].name == "end_signal":
                    break
            if cancel:
                call.cancel()
            else:
                await queue.put(None)  # half-close: the stream ends
                assert await call.read() == grpc.aio.EOF
            await channel.close()
            deadline = asyncio.get_running_loop().time() + 30
            while len([s for s in spans.spans if s["name"] == "ModelStreamInfer"]) < 1 + cancel:
                assert asyncio.get_running_loop().time() < deadline, "no stream span"
                await asyncio.sleep(0.05)
        streams = [s for s in spans.spans if s["name"] == "ModelStreamInfer"]
        assert all(s["trace_id"] == TRACE_ID and s["parent"] == CLIENT_SPAN for s in streams)
        nodes = descendants(spans.spans, streams[0]["span_id"])
        assert nodes and all(s["name"].startswith("node ") for s in nodes)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
