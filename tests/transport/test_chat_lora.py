"""Forced tool calls and JSON output on a LoRA adapter, as `make serve` serves the built-in
model (with --lora_dir): structured output works beside adapters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from tests.engine.lora_files import write_adapter
from tests.transport.chat_server import chat_server
from tests.transport.server import Server
from tests.transport.test_chat_tools import QUESTION, SCHEMAS, TOOLS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
           ) -> Iterator[Server]:
    loras = tmp_path_factory.mktemp("loras")
    # a mild random adapter: a strong one turns the 135M model into one that loops on the
    # whitespace JSON allows until max_tokens (the grammar holds either way)
    write_adapter(loras / "alpha", seed=0, spread=0.03)
    yield from chat_server(tmp_path_factory.mktemp("chat"), "--lora_dir", str(loras))


def test_required_tool_call_on_an_adapter(server: Server) -> None:
    with openai.OpenAI(base_url=f"{server.rest_url}/v1", api_key="unused") as client:
        # one call (parallel_tool_calls false): every argument is bounded by its schema, so
        # it ends within max_tokens at any temperature; parallel calls may go on until the cut
        reply = client.chat.completions.create(model="alpha", messages=QUESTION, tools=TOOLS,
                                               tool_choice="required", max_tokens=200,
                                               parallel_tool_calls=False)
        assert reply.model == "alpha" and reply.choices[0].finish_reason == "tool_calls"
        for call in reply.choices[0].message.tool_calls or []:
            assert isinstance(call, ChatCompletionMessageFunctionToolCall)
            jsonschema.validate(json.loads(call.function.arguments),
                                SCHEMAS[call.function.name])
        answer = client.chat.completions.create(
            model="alpha", messages=QUESTION, max_tokens=60,
            response_format={"type": "json_schema", "json_schema": {
                "name": "weather", "schema": SCHEMAS["get_time"]}})
        jsonschema.validate(json.loads(answer.choices[0].message.content or ""),
                            SCHEMAS["get_time"])
