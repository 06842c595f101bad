"""Tool calling and reasoning on the built-in model through the real openai SDK. Verdicts are
on structure (calls well formed, arguments valid for the schema, the order of stream pieces),
never on what the model chooses to say: required and named tool choices constrain the output
with structured output, and a regex forces the reasoning's shape."""

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
from openai.types.chat import ChatCompletionMessage, ChatCompletionMessageFunctionToolCall

from tests.transport.chat_server import MODEL, THINKER, chat_server
from tests.transport.server import Server

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {
        "city": {"type": "string", "maxLength": 20},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "unit", "days"], "additionalProperties": False}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "The forecast",
                                      "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "description": "The local time",
                                      "parameters": {"type": "object", "properties": {
                                          "zone": {"type": "string", "maxLength": 10}},
                                          "required": ["zone"]}}}]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
QUESTION: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
           ) -> Iterator[Server]:
    yield from chat_server(tmp_path_factory.mktemp("chat"))


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.rest_url}/v1", api_key="unused") as client:
        yield client


def check_call(name: str, arguments: str) -> None:
    assert name in SCHEMAS
    jsonschema.validate(json.loads(arguments), SCHEMAS[name])


def function_calls(message: ChatCompletionMessage) -> list[ChatCompletionMessageFunctionToolCall]:
    calls = message.tool_calls or []
    assert all(isinstance(c, ChatCompletionMessageFunctionToolCall) for c in calls)
    return [c for c in calls if isinstance(c, ChatCompletionMessageFunctionToolCall)]


@pytest.mark.parametrize("api", ["v1", "v3"])
def test_required_tool_choice_gives_valid_calls(server: Server, api: str) -> None:
    """On OpenAI's path and OVMS's."""
    with openai.OpenAI(base_url=f"{server.rest_url}/{api}", api_key="unused") as client:
        # one call: its schema bounds it within max_tokens at any temperature (parallel calls
        # may go on until the cut)
        reply = client.chat.completions.create(model=MODEL, messages=QUESTION, tools=TOOLS,
                                               tool_choice="required", max_tokens=200,
                                               parallel_tool_calls=False)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = function_calls(choice.message)
    assert calls and choice.message.content is None
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        check_call(call.function.name, call.function.arguments)
    assert len({call.id for call in calls}) == len(calls)


def test_named_tool_choice_streams_name_then_arguments(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, tools=TOOLS, max_tokens=200, stream=True,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    pieces = [(c.choices[0].delta, c.choices[0].finish_reason) for c in stream if c.choices]
    calls = [call for delta, _ in pieces for call in delta.tool_calls or []]
    assert calls[0].function is not None and calls[0].function.name == "get_time"
    assert calls[0].id and calls[0].type == "function"
    assert len(calls) > 2, "the arguments come in pieces"
    assert all(c.index == 0 and c.id is None and c.function is not None
               and c.function.name is None for c in calls[1:])
    arguments = "".join(c.function.arguments or "" for c in calls if c.function)
    check_call("get_time", arguments)
    assert pieces[-1][1] == "tool_calls"
    assert [reason for _, reason in pieces[:-1]] == [None] * (len(pieces) - 1)


def test_sdk_stream_helper_assembles_the_call(client: openai.OpenAI) -> None:
    """The SDK's stream helper (what agent frameworks use) parses the streamed calls."""
    with client.chat.completions.stream(
            model=MODEL, messages=QUESTION, tools=TOOLS, tool_choice="required",
            max_tokens=200, parallel_tool_calls=False) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    calls = function_calls(final.choices[0].message)
    assert len(calls) == 1  # parallel_tool_calls false: exactly one
    check_call(calls[0].function.name, calls[0].function.arguments)


def test_tool_round_trip(client: openai.OpenAI, server: Server) -> None:
    """The call goes back as an assistant message with tool_calls, the result as a tool
    message; the template renders both and the model answers."""
    first = client.chat.completions.create(
        model=MODEL, messages=QUESTION, tools=TOOLS, max_tokens=200,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = function_calls(first.choices[0].message)[0]
    history: list[Any] = [*QUESTION, first.choices[0].message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id,
                           "content": json.dumps({"forecast": "sunny, 21 C"})}]
    second = client.chat.completions.create(
        model=MODEL, messages=history, tools=TOOLS, tool_choice="none", max_tokens=20,
        extra_body={"min_tokens": 2})
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls
    assert second.choices[0].finish_reason in ("stop", "length")
    # what the template made of the history, through vLLM's /tokenize and /detokenize
    rendered = httpx.post(f"{server.rest_url}/tokenize", json={
        "model": MODEL, "messages": history, "tools": TOOLS}).json()
    text = httpx.post(f"{server.rest_url}/detokenize", json={
        "model": MODEL, "tokens": rendered["tokens"]}).json()["prompt"]
    assert "<tool_response>" in text and "sunny, 21 C" in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {' in text
    assert '"name": "get_time"' in text  # the tools, in the system message


def test_auto_tool_choice_answers_with_text_or_calls(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=QUESTION, tools=TOOLS,
                                           max_tokens=60)
    message = reply.choices[0].message
    if function_calls(message):
        assert reply.choices[0].finish_reason == "tool_calls"
    else:
        assert message.content is not None and "<tool_call>" not in message.content


BAD: list[tuple[dict[str, Any], str]] = [
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "array"}}}]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": ["a"]}}}]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
    ({"tools": [{"type": "retrieval"}]}, "tools"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"chat_template": "{{ messages }}"}, "chat_template"),
    # what structured output could not compile: refused before it reaches the engine, where
    # it would fail the whole batch's step and leave the pipeline unusable
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"$ref": "#/$defs/nope"}}}}}],
      "tool_choice": "required"}, "tools"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"x": {"type": "strange"}}}}}}, "response_format"),
    ({"guided_regex": "((("}, "guided_regex"),
]


@pytest.mark.parametrize(("extra", "param"), BAD, ids=[p for _, p in BAD])
def test_bad_tool_requests_are_a_400_naming_the_field(server: Server, extra: dict[str, Any],
                                                      param: str) -> None:
    response = httpx.post(f"{server.rest_url}/v1/chat/completions", json={
        "model": MODEL, "messages": QUESTION, "max_tokens": 5, **extra})
    assert response.status_code == 400, response.text
    named = response.json()["error"]["param"]
    assert named == param or named.startswith(f"{param}."), named  # or its path in the field
    after = httpx.post(f"{server.rest_url}/v1/chat/completions", timeout=60, json={
        "model": MODEL, "messages": QUESTION, "max_tokens": 2})
    assert after.status_code == 200  # the engine serves on


# -- reasoning: the `thinker` graph has reasoning_parser qwen3 ---------------------------------

THINK = r"<think>[a-z]{3,8}( [a-z]{3,8}){2,5}</think>[A-Z][a-z]{3,8}( [a-z]{3,8}){2,5}\."


def test_forced_reasoning_is_split_from_the_answer(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=THINKER, messages=QUESTION, max_tokens=120, extra_body={"guided_regex": THINK})
    message = reply.choices[0].message.model_dump()
    assert re.fullmatch(r"[a-z]{3,8}( [a-z]{3,8}){2,5}", message["reasoning_content"])
    assert message["reasoning"] == message["reasoning_content"]  # vLLM's newer name
    assert re.fullmatch(r"[A-Z][a-z]{3,8}( [a-z]{3,8}){2,5}\.", message["content"])


def test_forced_reasoning_streams_before_the_answer(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=THINKER, messages=QUESTION, max_tokens=120, stream=True,
        extra_body={"guided_regex": THINK})
    kinds, reasoning, content = [], "", ""
    for chunk in stream:
        delta = chunk.choices[0].delta.model_dump() if chunk.choices else {}
        if delta.get("reasoning_content"):
            kinds.append("reasoning")
            reasoning += delta["reasoning_content"]
            assert delta["reasoning"] == delta["reasoning_content"]
        if delta.get("content"):
            kinds.append("content")
            content += delta["content"]
    assert kinds.index("content") > kinds.index("reasoning")
    assert "reasoning" not in kinds[kinds.index("content"):]
    assert re.fullmatch(r"[a-z]{3,8}( [a-z]{3,8}){2,5}", reasoning)
    assert re.fullmatch(r"[A-Z][a-z]{3,8}( [a-z]{3,8}){2,5}\.", content)


def test_guided_generation_in_the_graph_keeps_auto_calls_valid(client: openai.OpenAI) -> None:
    """enable_tool_guided_generation: a call the model starts is constrained to the schema;
    forced here by a prompt-free required choice, and by auto on a streamed request."""
    reply = client.chat.completions.create(model=THINKER, messages=QUESTION, tools=TOOLS,
                                           max_tokens=150)
    for call in function_calls(reply.choices[0].message):
        check_call(call.function.name, call.function.arguments)


def test_every_choice_is_parsed_on_its_own(client: openai.OpenAI) -> None:
    """n choices, each with its own parser: every one a valid call, streamed with usage."""
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, tools=TOOLS, tool_choice="required", n=2,
        max_tokens=200, stream=True, stream_options={"include_usage": True},
        parallel_tool_calls=False, temperature=0.8, seed=5)
    arguments: dict[int, str] = {0: "", 1: ""}
    names: dict[int, str] = {}
    reasons: dict[int, str] = {}
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                assert call.index == 0  # one call per choice
                if call.function and call.function.name:
                    names[choice.index] = call.function.name
                arguments[choice.index] += (call.function.arguments or "") if call.function \
                    else ""
            if choice.finish_reason:
                reasons[choice.index] = choice.finish_reason
    assert reasons == {0: "tool_calls", 1: "tool_calls"}
    for index in (0, 1):
        check_call(names[index], arguments[index])
    assert usage is not None and usage.completion_tokens > 0


# -- the legacy functions fields (functions, function_call, role "function") -------------------

FUNCTIONS = [t["function"] for t in TOOLS]


def test_legacy_function_call_is_answered_in_its_shape(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=QUESTION, functions=FUNCTIONS,
        function_call={"name": "get_weather"}, max_tokens=150)
    choice = reply.choices[0]
    assert choice.finish_reason == "function_call" and not choice.message.tool_calls
    call = choice.message.function_call
    assert call is not None and call.name == "get_weather"
    check_call(call.name, call.arguments)

    # the call and its result sent back as the legacy history: a 200 with an answer
    history: list[Any] = [*QUESTION, {"role": "assistant", "content": None, "function_call": {
        "name": call.name, "arguments": call.arguments}},
        {"role": "function", "name": call.name, "content": '{"forecast": "sunny"}'}]
    answer = client.chat.completions.create(model=MODEL, messages=history,
                                            functions=FUNCTIONS, function_call="none",
                                            max_tokens=8)
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.choices[0].message.function_call is None


def test_legacy_function_call_streams_name_then_arguments(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, functions=FUNCTIONS,
        function_call={"name": "get_time"}, max_tokens=100, stream=True)
    names, arguments, reasons = [], "", []
    for chunk in stream:
        for choice in chunk.choices:
            assert not choice.delta.tool_calls
            piece = choice.delta.function_call
            if piece is not None:
                if piece.name:
                    assert not arguments  # the name comes first
                    names.append(piece.name)
                arguments += piece.arguments or ""
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert names == ["get_time"] and reasons == ["function_call"]
    check_call("get_time", arguments)


@pytest.mark.parametrize("extra, param", [
    ({"functions": FUNCTIONS, "tools": TOOLS}, "functions"),
    ({"function_call": {"name": "get_weather"}}, "function_call"),
    ({"functions": FUNCTIONS, "function_call": "maybe"}, "function_call"),
    ({"functions": [{"description": "no name"}]}, "functions"),
    ({"functions": FUNCTIONS, "function_call": {"name": "nope"}}, "tool_choice"),
])
def test_bad_legacy_functions_are_a_400_naming_the_field(server: Server, extra: dict[str, Any],
                                                         param: str) -> None:
    reply = httpx.post(f"{server.rest_url}/v1/chat/completions", json={
        "model": MODEL, "messages": QUESTION, "max_tokens": 4, **extra}, timeout=60)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


# -- a call cut by max_tokens ------------------------------------------------------------------

#: arguments that cannot fit in 40 tokens whatever the tokenization (4000 characters; no token
#: of the vocabulary is near 100 characters long)
LONG: list[Any] = [{"type": "function", "function": {"name": "write", "parameters": {
    "type": "object", "properties": {"text": {"type": "string", "minLength": 4000}},
    "required": ["text"]}}}]


@pytest.mark.parametrize("stream", [False, True])
def test_call_cut_by_max_tokens(client: openai.OpenAI, stream: bool) -> None:
    """As vLLM and OpenAI answer it: finish_reason length (not tool_calls), the call so far
    kept as a call (its arguments are not whole JSON), no markup in the content; the same
    streamed and not."""
    kwargs: dict[str, Any] = {"model": MODEL, "messages": QUESTION, "tools": LONG,
                              "tool_choice": "required", "max_tokens": 40}
    names, arguments, content, reasons = [], "", "", []
    if stream:
        for chunk in client.chat.completions.create(stream=True, **kwargs):
            for choice in chunk.choices:
                content += choice.delta.content or ""
                for piece in choice.delta.tool_calls or []:
                    assert piece.index == 0 and piece.function is not None
                    if piece.function.name:
                        names.append(piece.function.name)
                    arguments += piece.function.arguments or ""
                if choice.finish_reason:
                    reasons.append(choice.finish_reason)
    else:
        choice = client.chat.completions.create(**kwargs).choices[0]
        content, reasons = choice.message.content or "", [choice.finish_reason]
        for call in function_calls(choice.message):
            names.append(call.function.name)
            arguments += call.function.arguments
    assert reasons == ["length"] and content == ""
    assert names in ([], ["write"])  # cut after the call's name (else before it)
    assert not names or arguments.lstrip().startswith("{") or arguments == ""
    with pytest.raises(ValueError):
        json.loads(arguments)


def test_forced_call_beside_response_format_is_a_call(client: openai.OpenAI) -> None:
    """required with response_format (the OpenAI Agents SDK sends both): the answer is the
    call, constrained as a call; the format has no text to shape."""
    reply = client.chat.completions.create(
        model=MODEL, messages=QUESTION, tools=TOOLS, tool_choice="required",
        parallel_tool_calls=False, max_tokens=150, response_format={"type": "json_object"})
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    (call,) = function_calls(choice.message)
    check_call(call.function.name, call.function.arguments)
