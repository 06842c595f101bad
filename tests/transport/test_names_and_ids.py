"""--served_model_name aliases across /v1/models, OpenAI requests and KServe (REST and gRPC);
X-Request-Id in and out (the id in response ids and log lines); llama.cpp's ``timings`` on
request. A real server on loopback with fake engines, real clients."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import httpx
import openai
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ovserve.cli import build_parser, served_names
from ovserve.serving.server_config import GraphEntry
from ovserve.transport.request_ids import RequestIdFilter
from tests.transport.fake_server import LLM, fake_server

SETTINGS = {"served_model_names": {LLM: ("gpt-4o", "small"), "python_model": ("seed",)},
            "request_id_headers": True}
TIMING_FIELDS = {"prompt_n", "prompt_ms", "prompt_per_token_ms", "prompt_per_second",
                 "predicted_n", "predicted_ms", "predicted_per_token_ms",
                 "predicted_per_second", "queue_ms"}


async def test_aliases_in_every_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with fake_server(tmp_path, monkeypatch, SETTINGS) as server, \
            openai.AsyncOpenAI(base_url=server.rest_url + "/v1", api_key="none") as ai:
        cards = {m.id: m for m in (await ai.models.list()).data}
        assert {LLM, "gpt-4o", "small"} <= set(cards)
        assert cards["gpt-4o"].root == LLM  # type: ignore[attr-defined]
        assert (await ai.models.retrieve("small")).id == "small"
        answer = await ai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert answer.model == "gpt-4o" and answer.choices[0].message.content == "w0 w1 w2"
        stream = await ai.completions.create(model="small", prompt="a b", max_tokens=2,
                                             stream=True)
        assert {chunk.model async for chunk in stream} == {"small"}
        plain = await ai.chat.completions.create(
            model=LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=1)
        assert plain.model == LLM  # the servable's own name still serves
        with pytest.raises(openai.NotFoundError):
            await ai.chat.completions.create(
                model="gpt-5", messages=[{"role": "user", "content": "hi"}], max_tokens=1)
        async with httpx.AsyncClient(base_url=server.rest_url) as http:
            meta = (await http.get("/v2/models/seed")).json()
            assert meta["name"] == "seed"
            assert (await http.get("/v2/models/seed/ready")).status_code == 200
        triton = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            assert await triton.is_model_ready("seed")
            assert (await triton.get_model_metadata("seed")).name == "seed"
        finally:
            await triton.close()


async def test_request_ids_in_and_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.INFO)
    body = {"model": LLM, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
            "some_unknown_field": 1}  # logged ("ignoring unknown request fields")
    async with fake_server(tmp_path, monkeypatch, SETTINGS) as server, \
            httpx.AsyncClient(base_url=server.rest_url) as http:
        reply = await http.post("/v1/chat/completions", json=body,
                                headers={"X-Request-Id": "trace-me-42"})
        assert reply.status_code == 200
        assert reply.headers["x-request-id"] == "trace-me-42"
        assert reply.json()["id"] == "chatcmpl-trace-me-42"  # as vLLM
        tagged = [r for r in caplog.records if "unknown request fields" in r.getMessage()]
        assert tagged and tagged[0].request_tag == "[request trace-me-42] "  # type: ignore[attr-defined]
        # none given (or one that is not printable ASCII): a new one, echoed
        for headers in ({}, {"X-Request-Id": "a b"}):
            reply = await http.post("/v1/chat/completions", json=body, headers=headers)
            new = reply.headers["x-request-id"]
            assert len(new) == 32 and reply.json()["id"] == f"chatcmpl-{new}"
        # KServe's routes and refusals carry it too
        reply = await http.get("/v2/models/nothing", headers={"X-Request-Id": "kserve-1"})
        assert reply.status_code == 404 and reply.headers["x-request-id"] == "kserve-1"
        channel = grpc.aio.insecure_channel(server.grpc_url)
        try:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            call = stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="python_model"),
                                      metadata=(("x-request-id", "grpc-7"),))
            await call
            assert dict(await call.initial_metadata())["x-request-id"] == "grpc-7"
        finally:
            await channel.close()


async def test_no_header_unless_enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with fake_server(tmp_path, monkeypatch) as server, \
            httpx.AsyncClient(base_url=server.rest_url) as http:
        reply = await http.post("/v1/completions", json={"model": LLM, "prompt": "a",
                                                          "max_tokens": 1},
                                headers={"X-Request-Id": "abc"})
        assert reply.status_code == 200 and "x-request-id" not in reply.headers
        assert reply.json()["id"] == "cmpl-abc"


async def test_timings_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with fake_server(tmp_path, monkeypatch) as server, \
            openai.AsyncOpenAI(base_url=server.rest_url + "/v1", api_key="none") as ai:
        messages = [{"role": "user", "content": "one two three"}]
        answer = await ai.chat.completions.create(
            model=LLM, messages=messages, max_tokens=6,  # type: ignore[arg-type]
            extra_body={"ignore_eos": True, "timings_per_token": True})
        timings = answer.model_extra["timings"]  # type: ignore[index]
        assert set(timings) == TIMING_FIELDS
        assert timings["predicted_n"] == 6 and timings["prompt_n"] > 0
        assert timings["predicted_ms"] > 0 and timings["predicted_per_second"] > 0
        plain = await ai.chat.completions.create(model=LLM, messages=messages,  # type: ignore[arg-type]
                                                 max_tokens=2)
        assert "timings" not in (plain.model_extra or {})
        stream = await ai.chat.completions.create(
            model=LLM, messages=messages, max_tokens=4, stream=True,  # type: ignore[arg-type]
            extra_body={"ignore_eos": True, "timings_per_token": True})
        chunks = [chunk async for chunk in stream]  # type: ignore[union-attr]
        timed = [c for c in chunks if (c.model_extra or {}).get("timings")]
        assert len(timed) == 1 and timed[0].choices[0].finish_reason == "length"
        assert timed[0].model_extra["timings"]["predicted_n"] == 4  # type: ignore[index]


def test_served_model_name_flags(tmp_path: Path) -> None:
    parser = build_parser()
    entries = [GraphEntry(name=n, base_path=tmp_path, graph_path=tmp_path / "g.pbtxt")
               for n in ("llm", "echo")]
    args = parser.parse_args(["--served_model_name", "llm=a,b", "--served_model_name",
                              "echo=c", "llm=d"])
    assert served_names(parser, args, entries) == {"llm": ("a", "b", "d"), "echo": ("c",)}
    for wrong in (["nothing=a"], ["llm=echo"], ["llm=a", "echo=a"], ["plain"], ["llm="]):
        with pytest.raises(SystemExit):
            served_names(parser, parser.parse_args(["--served_model_name", *wrong]), entries)
    # vLLM's list with --model_path: the first names the servable
    args = parser.parse_args(["--model_path", str(tmp_path), "--served_model_name", "m1", "m2"])
    args.model_name = "m1"
    assert served_names(parser, args, [entries[0].__class__(
        name="m1", base_path=tmp_path, graph_path=tmp_path / "g.pbtxt")]) == {"m1": ("m2",)}
