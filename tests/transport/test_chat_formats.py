"""Output formats whose markers are special tokens, through a real server and the openai SDK:
the ``harmony`` graph (tool_parser gptoss) on the built-in model, its harmony markers forced
as text by a regex (the parser reads text, so markers written as plain tokens parse as the
special tokens gpt-oss writes). Verdicts on structure: the reasoning, the call and its
arguments come out of the regex's shape, streamed and not."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.transport.chat_server import HARMONY, chat_server
from tests.transport.server import Server

WORDS = r"[a-z]{3,8}( [a-z]{3,8}){1,3}"
HARMONY_CALL = (r"<\|channel\|>analysis<\|message\|>" + WORDS + r"<\|end\|>"
                r"<\|start\|>assistant<\|channel\|>commentary to=functions\.get_weather "
                r'<\|constrain\|>json<\|message\|>\{"city": "[A-Z][a-z]{2,8}", "days": [1-7]\}')
HARMONY_ANSWER = (r"<\|channel\|>analysis<\|message\|>" + WORDS + r"<\|end\|>"
                  r"<\|start\|>assistant<\|channel\|>final<\|message\|>[A-Z][a-z]{2,8}\.")
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}}}}}]
QUESTION: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
           ) -> Iterator[openai.OpenAI]:
    servers: Iterator[Server] = chat_server(tmp_path_factory.mktemp("formats"))
    server = next(servers)
    with openai.OpenAI(base_url=f"{server.rest_url}/v1", api_key="unused") as client:
        yield client
    next(servers, None)


def check_call(name: str, arguments: str) -> None:
    assert name == "get_weather"
    parsed = json.loads(arguments)
    assert re.fullmatch(r"[A-Z][a-z]{2,8}", parsed["city"]) and 1 <= parsed["days"] <= 7


def test_harmony_call_and_reasoning(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=HARMONY, messages=QUESTION, tools=TOOLS, max_tokens=150,
        extra_body={"guided_regex": HARMONY_CALL})
    choice = reply.choices[0]
    message = choice.message.model_dump()
    assert choice.finish_reason == "tool_calls"
    assert re.fullmatch(WORDS, message["reasoning_content"])
    assert not message["content"]
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function"
    check_call(calls[0].function.name, calls[0].function.arguments)


def test_harmony_streamed_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=HARMONY, messages=QUESTION, tools=TOOLS, max_tokens=150, stream=True,
        extra_body={"guided_regex": HARMONY_CALL})
    reasoning, name, arguments, reasons = "", "", "", []
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta.model_dump()
            reasoning += delta.get("reasoning_content") or ""
            assert not delta.get("content")
            for call in choice.delta.tool_calls or []:
                assert call.index == 0 and call.function is not None
                name += call.function.name or ""
                arguments += call.function.arguments or ""
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert reasons == ["tool_calls"]
    assert re.fullmatch(WORDS, reasoning)
    check_call(name, arguments)


@pytest.mark.parametrize("stream", [False, True])
def test_harmony_answer_without_tools(client: openai.OpenAI, stream: bool) -> None:
    """No tools asked for: harmony is still read (reasoning apart, the final channel is the
    answer, no marker in it)."""
    kwargs: dict[str, Any] = {"model": HARMONY, "messages": QUESTION, "max_tokens": 120,
                              "extra_body": {"guided_regex": HARMONY_ANSWER}}
    if stream:
        reasoning = content = ""
        for chunk in client.chat.completions.create(stream=True, **kwargs):
            for choice in chunk.choices:
                delta = choice.delta.model_dump()
                reasoning += delta.get("reasoning_content") or ""
                content += delta.get("content") or ""
    else:
        message = client.chat.completions.create(**kwargs).choices[0].message.model_dump()
        reasoning, content = message["reasoning_content"], message["content"]
    assert re.fullmatch(WORDS, reasoning)
    assert re.fullmatch(r"[A-Z][a-z]{2,8}\.", content)
