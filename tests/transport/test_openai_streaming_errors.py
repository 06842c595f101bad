"""SSE error handling above the engine, with a fake LLM servable (no model needed)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from fastapi.testclient import TestClient

from ovserve.errors import EngineError
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.protocol.generation import GenerationChunk, GenerationRequest
from ovserve.serving.registry import Registry, ServableState
from ovserve.serving.server_config import GraphEntry
from ovserve.transport.metrics import Metrics
from ovserve.transport.rest.app import build_app
from ovserve.transport.state import ServerState


class FailingMidway:
    """A stand-in LLM servable: one chunk, then the engine fails."""

    name = "fake-llm"
    generation_input = "input"

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        yield GenerationChunk(index=0, text="Hello")
        raise EngineError("engine fake-llm: step failed")


def app_with(servable: Any) -> TestClient:
    registry = Registry(BUILTIN_CALCULATORS)
    entry = GraphEntry(name="fake-llm", base_path=None, graph_path=None)  # type: ignore[arg-type]
    registry.states["fake-llm"] = ServableState(entry, servable)
    return TestClient(build_app(registry, Metrics(registry.engines), ServerState(registry)))


def test_error_after_first_byte_is_in_band_then_done() -> None:
    client = app_with(FailingMidway())
    reply = client.post("/v1/chat/completions", json={
        "model": "fake-llm", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 200
    events = reply.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert payloads[1]["choices"][0]["delta"] == {"content": "Hello"}
    assert payloads[2] == {"error": {"message": "engine fake-llm: step failed",
                                     "type": "server_error", "param": None, "code": None}}


def test_error_before_first_byte_gets_a_status() -> None:
    class FailingAtOnce(FailingMidway):
        async def generate(
            self, request: GenerationRequest
        ) -> AsyncGenerator[GenerationChunk, None]:
            raise EngineError("engine fake-llm: cannot start")
            yield  # pragma: no cover

    reply = app_with(FailingAtOnce()).post("/v1/completions", json={
        "model": "fake-llm", "prompt": "x", "stream": True})
    assert reply.status_code == 500
    assert reply.json()["error"]["message"] == "engine fake-llm: cannot start"
