"""A real ovserve (gRPC and REST on loopback, ``make serve``'s graphs) on fake engines, in the
test's own event loop: for fast tests of what clients see when the engine fails."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ovserve.app import RunningServer, ServerSettings, start
from ovserve.engine import EngineConfig, EngineRegistry
from ovserve.engine.fake import FakeEngine
from ovserve.serving.server_config import load_server_config
from tests.conftest import REPO
from tests.transport.server import Endpoints, free_port

LLM = "smollm2-135m-instruct"


@dataclass
class FakeServer(Endpoints):
    running: RunningServer
    engines: list[FakeEngine]

    @property
    def engine(self) -> FakeEngine:
        (engine,) = self.engines  # both servables share one engine
        return engine


def write_config(root: Path) -> Path:
    """``servables/config.json``'s two servables, on a model folder the fake engine reads."""
    model = root / "model"
    model.mkdir()
    (model / "openvino_model.xml").write_text("<net/>")  # what the LLM node's check looks for
    graph = (REPO / "graphs/llm/graph.pbtxt").read_text().replace(
        "../../models/smollm2-135m-instruct", str(model))
    (root / "llm").mkdir()
    (root / "llm/graph.pbtxt").write_text(graph)
    config = root / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "python_model", "base_path": str(REPO / "servables/servable_stream")},
        {"name": LLM, "base_path": "llm"}]}))
    return config


@asynccontextmanager
async def fake_server(root: Path, monkeypatch: pytest.MonkeyPatch,
                      settings: dict[str, Any] | None = None,
                      **engine_options: float) -> AsyncIterator[FakeServer]:
    """``settings``: ``ServerSettings`` fields beside the test's own (limits, names ...)."""
    config = write_config(root)
    monkeypatch.setenv("OVSERVE_MODEL_PATH", str(root / "model"))
    monkeypatch.setenv("OVSERVE_MAX_TOKENS", "400")
    engines: list[FakeEngine] = []

    def factory(engine_config: EngineConfig) -> FakeEngine:
        engine = FakeEngine(LLM, **engine_options)  # type: ignore[arg-type]
        engines.append(engine)
        return engine

    server = ServerSettings(entries=load_server_config(config), host="127.0.0.1",
                            grpc_port=free_port(), rest_port=free_port(), grace_seconds=1,
                            **(settings or {}))
    running = await start(server, EngineRegistry(factory))
    assert server.rest_port is not None and server.grpc_port is not None
    try:
        yield FakeServer(grpc_port=server.grpc_port, rest_port=server.rest_port,
                         running=running, engines=engines)
    finally:
        await running.stop()
