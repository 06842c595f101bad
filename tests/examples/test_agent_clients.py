"""Agent frameworks as their users run them, from ``.venv-clients``, against a live server on
the built-in model: LangChain's ChatOpenAI (bind_tools, streamed too, a tool round trip,
with_structured_output) and the OpenAI Agents SDK (an agent with one function tool through
/v1/responses, run whole and streamed, and the SDK's default tool call -> output -> final
answer loop). The checks are on structure: calls well formed,
arguments valid, runs complete."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.transport.chat_server import chat_server
from tests.transport.server import Server

CLIENTS = REPO / ".venv-clients" / "bin" / "python"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
           ) -> Iterator[Server]:
    assert CLIENTS.exists(), "the clients' venv is missing: `make test` builds .venv-clients"
    yield from chat_server(tmp_path_factory.mktemp("agents"))


def run(script: str, server: Server) -> list[dict[str, Any]]:
    result = subprocess.run([str(CLIENTS), str(REPO / "examples" / script), "--base_url",
                             f"{server.rest_url}/v1"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_langchain_chat_openai(server: Server) -> None:
    checks = {line["check"]: line for line in run("langchain_tools.py", server)}
    for name in ("bind_tools", "bind_tools streamed"):
        calls = checks[name]["tool_calls"]
        assert calls and all(c["name"] == "get_weather" and c["id"] for c in calls)
        for call in calls:
            assert isinstance(call["args"]["city"], str) and isinstance(call["args"]["days"], int)
    assert checks["bind_tools streamed"]["chunks"] >= 1
    assert isinstance(checks["tool round trip"]["content"], str)
    for method in ("json_schema", "function_calling"):
        trip = checks[f"with_structured_output {method}"]["trip"]
        assert isinstance(trip["city"], str) and 1 <= trip["days"] <= 14


def test_openai_agents_sdk(server: Server) -> None:
    lines = run("openai_agent.py", server)
    runs = {line["run"]: line for line in lines if "run" in line}
    for kind in ("run", "run_streamed"):
        assert runs[kind]["items"] == ["tool_call_item", "tool_call_output_item"]
        assert runs[kind]["final_output"].startswith("sunny in ")
        assert runs[kind]["responses"] == 1  # parallel_tool_calls false: one call, then done
    events = next(line["events"] for line in lines if "events" in line)
    assert "raw_response_event" in events and "run_item_stream_event" in events
    # the default loop: a call, its output sent back, then the model's final answer (a
    # Forecast, its schema's shape)
    for kind in ("loop", "loop_streamed"):
        assert runs[kind]["items"] == ["tool_call_item", "tool_call_output_item",
                                       "message_output_item"], runs[kind]
        assert runs[kind]["responses"] == 2
        final = runs[kind]["final_output"]
        assert set(final) == {"summary"} and len(final["summary"]) <= 60
