"""The Responses API (/v1/responses, /v3/responses) on the built-in model through the real
openai SDK: text, function calls (forced by tool_choice), a function call round trip, JSON
schema output, reasoning, and the streamed event sequence the SDK parses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import openai
import pytest
from openai.types.responses import ResponseCompletedEvent, ResponseFunctionToolCall

from tests.transport.chat_server import MODEL, THINKER, chat_server
from tests.transport.server import Server

SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "city": {"type": "string", "maxLength": 20},
    "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "days"], "additionalProperties": False}
TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "description": "The forecast",
                     "parameters": SCHEMA, "strict": True}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
           ) -> Iterator[Server]:
    yield from chat_server(tmp_path_factory.mktemp("responses"))


@pytest.fixture(params=["v1", "v3"])
def client(server: Server, request: pytest.FixtureRequest) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.rest_url}/{request.param}",
                       api_key="unused") as client:
        yield client


def test_text(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Say hello.",
                                       instructions="Be brief.", max_output_tokens=8,
                                       extra_body={"ignore_eos": True})
    assert response.status == "incomplete"  # ignore_eos: cut at max_output_tokens
    assert response.incomplete_details and (
        response.incomplete_details.reason == "max_output_tokens")
    assert response.output_text and response.output[0].type == "message"
    assert response.usage and response.usage.output_tokens == 8
    assert response.id.startswith("resp_")


def test_forced_function_call(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Weather in Paris for 3 days?",
                                       tools=TOOLS, tool_choice="required",
                                       max_output_tokens=150)
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and response.status == "completed"
    for call in calls:
        assert call.name == "get_weather" and call.call_id.startswith("call_")
        jsonschema.validate(json.loads(call.arguments), SCHEMA)


def test_function_call_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model=MODEL, input="Weather in Paris?", tools=TOOLS, max_output_tokens=150,
        tool_choice={"type": "function", "name": "get_weather"})
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(
        model=MODEL, tools=TOOLS, tool_choice="none", max_output_tokens=20,
        input=[{"role": "user", "content": "Weather in Paris?"},
               {"type": "function_call", "call_id": call.call_id, "name": call.name,
                "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id,
                "output": "sunny, 21 C"}],
        extra_body={"min_tokens": 2})
    assert second.output_text
    assert not [item for item in second.output if item.type == "function_call"]


def test_json_schema_text_format(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, input="A city and a number of days, as JSON.", max_output_tokens=100,
        text={"format": {"type": "json_schema", "name": "trip", "schema": SCHEMA}})
    jsonschema.validate(json.loads(response.output_text), SCHEMA)


def test_streamed_function_call_events(client: openai.OpenAI) -> None:
    stream = client.responses.create(model=MODEL, input="Weather in Paris?", tools=TOOLS,
                                     tool_choice="required", max_output_tokens=150,
                                     parallel_tool_calls=False, stream=True)
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = kinds.index("response.output_item.added")
    assert kinds[added + 1] == "response.function_call_arguments.delta"
    done = kinds.index("response.function_call_arguments.done")
    assert set(kinds[added + 1:done]) == {"response.function_call_arguments.delta"}
    assert kinds[done + 1] == "response.output_item.done"
    deltas = "".join(getattr(e, "delta", "") for e in events
                     if e.type == "response.function_call_arguments.delta")
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    (call,) = [item for item in final.response.output
               if isinstance(item, ResponseFunctionToolCall)]
    assert call.arguments == deltas
    jsonschema.validate(json.loads(deltas), SCHEMA)


def test_streamed_text_with_the_sdk_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Say hello.", max_output_tokens=10,
                                 extra_body={"ignore_eos": True}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds.count("response.output_text.delta") >= 2
    order = ["response.output_item.added", "response.content_part.added",
             "response.output_text.delta", "response.output_text.done",
             "response.content_part.done", "response.output_item.done",
             "response.completed"]
    assert [k for k in kinds if k in order] == sorted(
        [k for k in kinds if k in order], key=order.index)
    assert final.output_text and final.usage and final.usage.output_tokens == 10
    assert final.status == "incomplete"


THINK = r"<think>[a-z]{3,8}( [a-z]{3,8}){2,5}</think>[A-Z][a-z]{3,8}( [a-z]{3,8}){2,5}\."


def test_reasoning_item(server: Server) -> None:
    response = httpx.post(f"{server.rest_url}/v1/responses", timeout=60, json={
        "model": THINKER, "input": "Hi", "max_output_tokens": 100, "guided_regex": THINK}).json()
    kinds = [item["type"] for item in response["output"]]
    assert kinds == ["reasoning", "message"]
    reasoning = response["output"][0]["content"][0]["text"]
    assert re.fullmatch(r"[a-z]{3,8}( [a-z]{3,8}){2,5}", reasoning)
    assert "<think>" not in response["output"][1]["content"][0]["text"]


def test_streamed_reasoning_item(server: Server) -> None:
    """Reasoning streams as its own item (reasoning_text deltas) before the message's."""
    with httpx.stream("POST", f"{server.rest_url}/v1/responses", timeout=60, json={
            "model": THINKER, "input": "Hi", "max_output_tokens": 100, "stream": True,
            "guided_regex": THINK}) as response:
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines()
                  if line.startswith("data: ")]
    kinds = [event["type"] for event in events]
    first_text = kinds.index("response.output_text.delta")
    assert "response.reasoning_text.delta" in kinds[:first_text]
    assert "response.reasoning_text.delta" not in kinds[first_text:]
    assert kinds.index("response.reasoning_text.done") < first_text
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
    reasoning = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_text.delta")
    assert reasoning == final["output"][0]["content"][0]["text"]
    assert re.fullmatch(r"[a-z]{3,8}( [a-z]{3,8}){2,5}", reasoning)


# -- custom tools and local_shell (what Codex-style clients send) ---------------------------------

PATCH: Any = {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch",
         "format": {"type": "grammar", "syntax": "lark",
                    "definition": 'start: "*** Begin Patch" /(.|\\n)*/ "*** End Patch"'}}
CODE: Any = {"type": "custom", "name": "code", "description": "Python code to run",
        "format": {"type": "grammar", "syntax": "regex", "definition": "print\\([0-9]{1,4}\\)"}}
SHELL: Any = {"type": "local_shell"}


def test_custom_tool_call_has_input(client: openai.OpenAI) -> None:
    """A custom tool's call is a custom_tool_call item with its input; a regex grammar
    constrains it (so its shape is the verdict), then the call and its output go back."""
    response = client.responses.create(
        model=MODEL, input="Print a number.", tools=[PATCH, CODE], max_output_tokens=80,
        tool_choice={"type": "custom", "name": "code"})
    (call,) = [item for item in response.output if item.type == "custom_tool_call"]
    assert call.name == "code" and call.call_id.startswith("call_")
    assert re.fullmatch(r"print\([0-9]{1,4}\)", call.input)
    answer = client.responses.create(
        model=MODEL, tools=[PATCH, CODE], tool_choice="none", max_output_tokens=8,
        input=[{"role": "user", "content": "Print a number."},
               {"type": "custom_tool_call", "call_id": call.call_id, "name": call.name,
                "input": call.input},
               {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "7"}],
        extra_body={"min_tokens": 2})
    assert answer.output_text and answer.output[0].type == "message"


def test_streamed_custom_tool_call_events(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Print a number.", tools=[CODE],
                                 tool_choice={"type": "custom", "name": "code"},
                                 max_output_tokens=80) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    added = kinds.index("response.output_item.added")
    done = kinds.index("response.custom_tool_call_input.done")
    assert set(kinds[added + 1:done]) == {"response.custom_tool_call_input.delta"}
    assert kinds[done + 1] == "response.output_item.done" and kinds[-1] == "response.completed"
    streamed = "".join(getattr(e, "delta", "") for e in events
                       if e.type == "response.custom_tool_call_input.delta")
    (call,) = [item for item in final.output if item.type == "custom_tool_call"]
    assert call.input == streamed and re.fullmatch(r"print\([0-9]{1,4}\)", streamed)


def test_local_shell_call(client: openai.OpenAI) -> None:
    """A forced local_shell call is a local_shell_call item with an exec action. Its command
    list may run past max_output_tokens on this model: then the item and the response are
    incomplete. A cut after the call's arguments (inside its closing markup, as sampled
    defaults made it) leaves a whole call in an incomplete response, and none of the markup as
    a message. A call and its output sent back are read as the history."""
    response = client.responses.create(model=MODEL, input="List the files.", tools=[SHELL],
                                       tool_choice="required", parallel_tool_calls=False,
                                       max_output_tokens=120)
    (call,) = [item for item in response.output if item.type == "local_shell_call"]
    assert call.action.type == "exec" and call.call_id.startswith("call_")
    assert all(isinstance(c, str) for c in call.action.command)
    assert call.status in ("completed", "incomplete")
    if call.status == "incomplete":  # an item is cut only when the response is
        assert response.status == "incomplete"
    if response.status == "completed":
        assert call.status == "completed" and call.action.command
    texts = [part.text for item in response.output if item.type == "message"
             for part in item.content if part.type == "output_text"]
    assert not any("tool_call" in text for text in texts), texts
    answer = client.responses.create(
        model=MODEL, tools=[SHELL], tool_choice="none", max_output_tokens=8,
        input=[{"role": "user", "content": "List the files."},
               {"type": "local_shell_call", "id": "lsh_1", "call_id": "call_1",
                "status": "completed", "action": {"type": "exec", "command": ["ls", "-la"],
                                                  "env": {}}},
               {"type": "local_shell_call_output", "id": "call_1", "output": "a.py"}],
        extra_body={"min_tokens": 2})
    assert answer.output_text


LONG: list[Any] = [{"type": "function", "name": "write", "parameters": {
    "type": "object", "properties": {"text": {"type": "string", "minLength": 4000}},
    "required": ["text"]}}]


@pytest.mark.parametrize("stream", [False, True])
def test_call_cut_by_max_output_tokens_is_incomplete(server: Server, stream: bool) -> None:
    """Arguments that cannot fit (4000 characters in 40 tokens): the response and its call
    item are incomplete (OpenAI's statuses), the call so far kept, streamed and not."""
    body = {"model": MODEL, "input": "Write.", "tools": LONG, "tool_choice": "required",
            "max_output_tokens": 40, "stream": stream}
    with httpx.stream("POST", f"{server.rest_url}/v1/responses", json=body,
                      timeout=60) as reply:
        lines = [line for line in reply.iter_lines() if line.startswith("data: ")] \
            if stream else [f"data: {json.dumps({'response': json.loads(reply.read())})}"]
    response = json.loads(lines[-1][len("data: "):])["response"]
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    for item in response["output"]:
        assert item["type"] == "function_call" and item["status"] == "incomplete"
        with pytest.raises(ValueError):
            json.loads(item["arguments"])


@pytest.mark.parametrize(("body", "param"), [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"tools": [{"type": "web_search"}]}, "tools"),
    ({"tools": [{**CODE, "format": {"type": "grammar", "syntax": "ebnf",
                                    "definition": "x"}}]}, "tools"),
    ({"tools": [{**CODE, "format": {"type": "grammar", "syntax": "regex",
                                    "definition": "(("}}]}, "tools"),
    ({"tools": [CODE], "tool_choice": {"type": "custom", "name": "nope"}}, "tool_choice"),
    ({"input": [{"type": "custom_tool_call", "call_id": "c", "name": "code"}]}, "input"),
    ({"input": [{"type": "local_shell_call", "call_id": "c", "action": {}}]}, "input"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"input": [{"type": "image", "url": "x"}]}, "input"),
    ({"temperature": 5}, "temperature"),
])
def test_bad_requests(server: Server, body: dict[str, Any], param: str) -> None:
    response = httpx.post(f"{server.rest_url}/v1/responses",
                          json={"model": MODEL, "input": "hi", **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].split(".")[0] == param
