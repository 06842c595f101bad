"""Config reload of an LLM graph on fake engines (a real server in the test's event loop): a
changed graph whose engine options did not change keeps its engine (no restart, a chat stream
in flight finishes on it); changed engine options restart the engine once the requests in flight
are done; a broken graph leaves the loaded one serving."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ovserve.app import ServerSettings, start
from ovserve.engine import EngineConfig, EngineRegistry
from ovserve.engine.fake import FakeEngine
from ovserve.serving.server_config import load_server_config
from tests.transport.fake_server import LLM, write_config
from tests.transport.server import free_port

DEADLINE = 60.0


async def until(condition: Callable[[], Any], what: str) -> None:
    end = asyncio.get_running_loop().time() + DEADLINE
    while not condition():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def chat(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """A streamed chat completion: its chunks (the fake engine stops by itself)."""
    chunks = []
    body = {"model": LLM, "stream": True, "max_tokens": 12,
            "messages": [{"role": "user", "content": "hello"}]}
    async with client.stream("POST", "/v3/chat/completions", json=body) as reply:
        assert reply.status_code == 200, await reply.aread()
        async for line in reply.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    assert "error" not in chunks[-1], chunks[-1]
    return chunks


async def test_a_changed_llm_graph_shares_its_engine_unless_its_options_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path)
    config.write_text(json.dumps({"mediapipe_config_list": [{"name": LLM, "base_path": "llm"}]}))
    graph = tmp_path / "llm" / "graph.pbtxt"
    monkeypatch.setenv("OVSERVE_MODEL_PATH", str(tmp_path / "model"))
    engines: list[FakeEngine] = []

    def factory(engine_config: EngineConfig) -> FakeEngine:
        engines.append(FakeEngine(LLM))
        return engines[-1]

    settings = ServerSettings(entries=load_server_config(config), host="127.0.0.1",
                              grpc_port=None, rest_port=free_port(), grace_seconds=1,
                              config_path=config, config_poll_seconds=0)
    running = await start(settings, EngineRegistry(factory))
    registry = running.registry
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.rest_port}",
                                     timeout=DEADLINE) as client:
            (engine,) = engines
            old = registry.get(LLM)

            async def reload(expected: int = 201) -> None:
                reply = await client.post("/v1/config/reload")
                assert reply.status_code == expected, reply.text

            # the graph changes (not its engine options) while a stream is in flight
            engine.pause()
            stream = asyncio.create_task(chat(client))
            await until(lambda: old.inflight.count == 1, "the stream in flight")
            graph.write_text(graph.read_text().replace("max_tokens_limit: 4096",
                                                       "max_tokens_limit: 2048"))
            await reload()
            new = registry.get(LLM)
            assert new is not old and old.inflight.retired
            assert engines == [engine] and not engine._closed  # shared, not restarted
            engine.resume()
            chunks = await stream
            assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
            await until(lambda: not registry._outgoing, "the old graph unloaded")
            assert not engine._closed  # the new graph still uses it
            assert (await chat(client))[-1]["choices"][0]["finish_reason"] == "stop"
            states = (await client.get("/v1/config")).json()
            assert states[LLM]["model_version_status"][0]["state"] == "AVAILABLE"

            # a graph that does not load: the loaded one goes on serving, on the same engine
            good = graph.read_text()
            graph.write_text(good.replace("HttpLLMCalculator", "NoSuchCalculator"))
            await reload(500)
            assert registry.get(LLM) is new and engines == [engine] and not engine._closed
            assert (await chat(client))[-1]["choices"][0]["finish_reason"] == "stop"

            # changed engine options: the engine restarts once the stream in flight is done
            engine.pause()
            stream = asyncio.create_task(chat(client))
            await until(lambda: new.inflight.count == 1, "the stream in flight")
            graph.write_text(good.replace("max_num_seqs: 256", "max_num_seqs: 128"))
            await reload()
            states = (await client.get("/v1/config")).json()
            assert states[LLM]["model_version_status"][0]["state"] == "LOADING"
            assert (await client.get("/v2/health/ready")).status_code == 503
            engine.resume()
            assert (await stream)[-1]["choices"][0]["finish_reason"] == "stop"
            await until(lambda: registry.states[LLM].servable is not None, "the restart")
            assert engine._closed and len(engines) == 2
            assert (await chat(client))[-1]["choices"][0]["finish_reason"] == "stop"
            assert (await client.get("/v2/health/ready")).status_code == 200
    finally:
        await running.stop()
