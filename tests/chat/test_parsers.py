"""Each family's parser on recorded model outputs, fed whole and in 1-, 2-, 3- and
7-character pieces: the same content, reasoning and calls come out."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ovserve.chat.incremental import ChatOutputParser
from ovserve.chat.parsers import (
    REASONING_PARSERS,
    TOOL_PARSERS,
    HarmonyParser,
    OnyxParser,
    ThinkParser,
)
from ovserve.protocol.chat import Tool

WEATHER = Tool("get_weather", "Weather in a city", {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"]})
TIME = Tool("get_time", None, {"type": "object", "properties": {"zone": {"type": "string"}}})
TOOLS = (WEATHER, TIME)
SIZES = (1, 2, 3, 7, 10_000)

# (parser, recorded output, expected content, expected calls as (name, arguments object))
RECORDED: list[tuple[str, str, str, list[tuple[str, dict[str, Any]]]]] = [
    # Qwen2.5-7B-Instruct
    ("hermes3", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", '
                '"days": 3}}\n</tool_call>', "", [("get_weather", {"city": "Paris", "days": 3})]),
    # Qwen3-8B: two calls, text before
    ("hermes3", 'Let me check both.\n<tool_call>\n{"name": "get_weather", "arguments": '
                '{"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", '
                '"arguments": {"zone": "CET"}}\n</tool_call>',
     "Let me check both.", [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"})]),
    # no call: the text is content, a "<" in it included
    ("hermes3", "It is 3 < 4, and <tool is not a tag.", "It is 3 < 4, and <tool is not a tag.",
     []),
    # arguments in a string, keys in another order, a brace inside a string
    ("hermes3", '<tool_call>{"arguments": "{\\"city\\": \\"Rome}\\"}", "name": "get_weather"}'
                '</tool_call>', "", [("get_weather", {"city": "Rome}"})]),
    # Llama-3.2-3B-Instruct
    ("llama3", '{"name": "get_weather", "parameters": {"city": "Paris"}}',
     "", [("get_weather", {"city": "Paris"})]),
    ("llama3", '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}; '
               '{"name": "get_time", "parameters": {}}',
     "", [("get_weather", {"city": "Oslo"}), ("get_time", {})]),
    ("llama3", "The weather is {unknown}.", "The weather is {unknown}.", []),
    # Mistral-7B-Instruct-v0.3, with and without its [TOOL_CALLS] token
    ("mistral", '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                '{"name": "get_time", "arguments": {"zone": "UTC"}}]',
     "", [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "UTC"})]),
    ("mistral", ' [{"name": "get_weather", "arguments": {"city": "Lyon"}}]',
     "", [("get_weather", {"city": "Lyon"})]),
    # Phi-4-mini-instruct
    ("phi4", 'functools[{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}]',
     "", [("get_weather", {"city": "Paris", "days": 2})]),
    # Devstral-Small-2505
    ("devstral", 'Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
     "Sure.", [("get_weather", {"city": "Paris"})]),
    # Devstral-Small-2507, its [TOOL_CALLS] and [ARGS] special tokens kept in the text
    ("devstral", '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": 2}[TOOL_CALLS]'
                 'get_time[ARGS]{"zone": "CET"}',
     "", [("get_weather", {"city": "Paris", "days": 2}), ("get_time", {"zone": "CET"})]),
    # gpt-oss-20b (harmony): reasoning, a preamble, a call (its <|call|> stop token left out)
    ("gptoss", "<|channel|>analysis<|message|>User asks weather in Paris. Use tool.<|end|>"
               "<|start|>assistant<|channel|>commentary<|message|>Checking.<|end|>"
               "<|start|>assistant<|channel|>commentary to=functions.get_weather "
               '<|constrain|>json<|message|>{"city":"Paris","days":3}',
     "Checking.", [("get_weather", {"city": "Paris", "days": 3})]),
    # gpt-oss-20b: two calls, the recipient in the role part too
    ("gptoss", "<|channel|>analysis<|message|>Two tools.<|end|><|start|>assistant to="
               'functions.get_weather<|channel|>commentary json<|message|>{"city":"Oslo"}'
               "<|call|><|start|>assistant<|channel|>commentary to=functions.get_time "
               "<|constrain|>json<|message|>{}<|call|>",
     "", [("get_weather", {"city": "Oslo"}), ("get_time", {})]),
    # gpt-oss-20b: an answer, no call; a browser call is not a function call
    ("gptoss", "<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>"
               "commentary to=browser.search <|constrain|>json<|message|>{\"q\": \"x\"}<|call|>"
               "<|start|>assistant<|channel|>final<|message|>It is 2 < 3 <|ok|>.",
     "It is 2 < 3 <|ok|>.", []),
    # LFM2-1.2B-Tool: pythonic calls between special tokens
    ("lfm2", 'Sure.<|tool_call_start|>[get_weather(city="Paris", days=3), '
             "get_time(zone='UTC')]<|tool_call_end|>",
     "Sure.", [("get_weather", {"city": "Paris", "days": 3}), ("get_time", {"zone": "UTC"})]),
    ("lfm2", "<|tool_call_start|>[get_weather(city=\"Lyon\", days=null)]<|tool_call_end|>"
             "Done.", "Done.", [("get_weather", {"city": "Lyon", "days": None})]),
    # Gemma 4 (OVMS's recorded outputs): Gemma's object syntax, two calls in one region
    ("gemma4", 'Checking.\n\n<|tool_call>call:get_weather{city:<|"|>Paris, FR<|"|>,days:3}'
               '<tool_call|><turn|>',
     "Checking.", [("get_weather", {"city": "Paris, FR", "days": 3})]),
    ("gemma4", '<|tool_call>call:get_weather{city:<|"|>a{b}:c<|"|>,days:2}call:get_time'
               '{zone:<|"|>UTC<|"|>}<tool_call|>',
     "", [("get_weather", {"city": "a{b}:c", "days": 2}), ("get_time", {"zone": "UTC"})]),
    ("gemma4", '<|tool_call>call:get_time{}<tool_call|>', "", [("get_time", {})]),
    # MiniCPM5 (OVMS's recorded outputs): typed parameters
    ("minicpm5", 'Let me check.<function name="get_weather"><param name="city">Beijing'
                 '</param><param name="days">4</param></function><function name="get_time">'
                 '</function>',
     "Let me check.", [("get_weather", {"city": "Beijing", "days": 4}), ("get_time", {})]),
    # Onyx (OVMS's recorded shapes): a content turn, with "to=" inside the answer
    ("onyx", " to=user<|message|>Send email to=admin for help.<|eot|>",
     "Send email to=admin for help.", []),
    ("onyx", "<|message|>It's 65F in SF.<|eot|>", "It's 65F in SF.", []),
    # Onyx: reasoning to self, then a call turn
    ("onyx", " to=self<|message|>I should look up Paris.<|eom|> to=get_weather<|message|>"
             '<atem:function_calls>\n<atem:invoke name="get_weather">\n<atem:parameter '
             'name="city">Paris</atem:parameter>\n<atem:parameter name="days">2'
             "</atem:parameter>\n</atem:invoke>\n</atem:function_calls><|eot|>",
     "", [("get_weather", {"city": "Paris", "days": 2})]),
    # Qwen3-Coder-30B-A3B
    ("qwen3coder", "I'll look.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nNew "
                   "York\n</parameter>\n<parameter=days>\n5\n</parameter>\n</function>\n"
                   "</tool_call>",
     "I'll look.", [("get_weather", {"city": "New York", "days": 5})]),
]


def run(parser: ChatOutputParser, text: str, size: int) -> tuple[str, str, list[Any]]:
    content = reasoning = ""
    calls: dict[int, dict[str, Any]] = {}
    order: list[tuple[str, int]] = []

    def take(delta: Any) -> None:
        nonlocal content, reasoning
        content += delta.content
        reasoning += delta.reasoning
        for piece in delta.tool_calls:
            if piece.name is not None:
                assert piece.index not in calls and piece.id.startswith("call_")
                calls[piece.index] = {"name": piece.name, "arguments": ""}
                order.append(("name", piece.index))
            else:  # arguments only after their call's name
                assert piece.index in calls
            calls[piece.index]["arguments"] += piece.arguments

    for i in range(0, len(text), size):
        take(parser.feed(text[i:i + size]))
    take(parser.finish())
    return content, reasoning, [calls[i] for i in sorted(calls)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("name", "text", "content", "expected"), RECORDED)
def test_recorded_outputs(name: str, text: str, content: str,
                          expected: list[tuple[str, dict[str, Any]]], size: int) -> None:
    parser = ChatOutputParser(tools=TOOL_PARSERS[name](TOOLS))
    got_content, _, calls = run(parser, text, size)
    assert got_content == content
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == expected
    assert parser.called == bool(expected)


THINKING = [
    # Qwen3-0.6B with thinking on
    ("<think>\nThe user asks 2+2. That is 4.\n</think>\n\nThe answer is 4.", False,
     "\nThe user asks 2+2. That is 4.\n", "The answer is 4."),
    # DeepSeek-R1-Distill: the template opened <think>
    ("Okay, 2+2 is 4.\n</think>\n\n4", True, "Okay, 2+2 is 4.\n", "4"),
    # no reasoning at all
    ("Just 4 <think> here is text.", False, "", "Just 4 <think> here is text."),
    # cut short inside reasoning
    ("<think>Still thinking", False, "Still thinking", ""),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("text", "inside", "reasoning", "content"), THINKING)
def test_reasoning(text: str, inside: bool, reasoning: str, content: str, size: int) -> None:
    parser = ChatOutputParser(reasoning=ThinkParser(inside=inside))
    got_content, got_reasoning, _ = run(parser, text, size)
    assert (got_reasoning, got_content) == (reasoning, content)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", sorted(REASONING_PARSERS))
def test_reasoning_tags_of_each_family(name: str, size: int) -> None:
    """Qwen3's, LFM2.5's and MiniCPM5's <think>, Gemma 4's <|channel>thought ... <channel|>."""
    tags = REASONING_PARSERS[name]
    text = f"{tags.opening}Paris is in France.{tags.closing}\n\nIt is sunny."
    parser = ChatOutputParser(reasoning=ThinkParser(tags.opening, tags.closing))
    content, reasoning, _ = run(parser, text, size)
    assert (reasoning, content) == ("Paris is in France.", "It is sunny.")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("calls", [True, False])
def test_harmony_reasoning_content_and_calls(size: int, calls: bool) -> None:
    """gpt-oss: analysis is reasoning, final and commentary are content (joined by a space
    as OVMS does); without tools in the request a call's message is left out."""
    text = ("<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>"
            "analysis<|message|>Call it.<|end|><|start|>assistant<|channel|>commentary "
            'to=functions.get_weather <|constrain|>json<|message|>{"city": "Rome"}<|call|>'
            "<|start|>assistant<|channel|>commentary<|message|>Done:<|end|>"
            "<|start|>assistant<|channel|>final<|message|>Sunny in Rome.")
    parser = ChatOutputParser(None, HarmonyParser(TOOLS, calls=calls))
    content, reasoning, got = run(parser, text, size)
    assert (reasoning, content) == ("Need weather. Call it.", "Done: Sunny in Rome.")
    expected = [("get_weather", {"city": "Rome"})] if calls else []
    assert [(c["name"], json.loads(c["arguments"])) for c in got] == expected


@pytest.mark.parametrize("size", SIZES)
def test_onyx_reasoning_and_answer(size: int) -> None:
    parser = ChatOutputParser(None, OnyxParser(TOOLS))
    text = " to=self<|message|>Think first.<|eom|> to=user<|message|>Sunny.<|eot|>"
    assert run(parser, text, size) == ("Sunny.", "Think first.", [])


@pytest.mark.parametrize("size", SIZES)
def test_harmony_cut_short(size: int) -> None:
    """Output that ends inside a message (max_tokens): what was written is kept, as it
    was streamed; an unfinished header is not content."""
    parser = ChatOutputParser(None, HarmonyParser(TOOLS))
    text = ('<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>'
            'commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Pa')
    content, reasoning, got = run(parser, text, size)
    assert (content, reasoning) == ("", "Think.")
    assert [(c["name"], c["arguments"]) for c in got] == [("get_weather", '{"city": "Pa')]
    parser = ChatOutputParser(None, HarmonyParser(TOOLS))
    assert run(parser, "<|channel|>final<|message|>Hi.<|end|><|start|>assistant<|chan",
               size)[:2] == ("Hi.", "")


@pytest.mark.parametrize("size", SIZES)
def test_reasoning_then_a_call(size: int) -> None:
    text = ('<think>I need the weather tool.</think>\n<tool_call>\n{"name": "get_weather", '
            '"arguments": {"city": "Paris"}}\n</tool_call>')
    parser = ChatOutputParser(ThinkParser(), TOOL_PARSERS["hermes3"](TOOLS))
    content, reasoning, calls = run(parser, text, size)
    assert (content, reasoning) == ("", "I need the weather tool.")
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"})]


def test_arguments_stream_in_pieces() -> None:
    """A call's name comes first, alone; its arguments follow in fragments as they arrive."""
    parser = ChatOutputParser(tools=TOOL_PARSERS["hermes3"](TOOLS))
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    pieces = [parser.feed(text[i:i + 4]) for i in range(0, len(text), 4)]
    deltas = [d for p in pieces for d in p.tool_calls]
    assert deltas[0].name == "get_weather" and deltas[0].arguments == ""
    assert len(deltas) > 3 and all(d.name is None for d in deltas[1:])
    assert "".join(d.arguments for d in deltas) == '{"city": "Paris"}'


@pytest.mark.parametrize("name", ["hermes3", "qwen3coder", "devstral"])
def test_long_arguments_are_read_once(name: str) -> None:
    """A coding agent's call writes a file through its arguments: 30,000 characters, braces,
    quotes and backslashes in strings, one character at a time. The same text comes out, and
    each piece is read once (re-reading the call per piece took over a minute here)."""
    content = 'x = {"a": [1]}  # "q" \\ }\n' * 1200
    write = Tool("write", None, {"type": "object", "properties": {
        "path": {"type": "string"}, "content": {"type": "string"}}})
    arguments = json.dumps({"path": "a.py", "content": content})
    text = {
        "hermes3": f'<tool_call>\n{{"name": "write", "arguments": {arguments}}}\n</tool_call>',
        "qwen3coder": "<tool_call>\n<function=write>\n<parameter=path>\na.py\n</parameter>\n"
                      f"<parameter=content>\n{content}\n</parameter>\n</function>\n</tool_call>",
        "devstral": f"[TOOL_CALLS]write[ARGS]{arguments}",
    }[name]
    started = time.monotonic()
    _, _, calls = run(ChatOutputParser(tools=TOOL_PARSERS[name]((write,))), text, 1)
    assert time.monotonic() - started < 10
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("write", {"path": "a.py", "content": content})]


CUT = [  # output cut by max_tokens inside a call: (parser, text, content, calls as name, args)
    ("hermes3", 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa',
     "Sure.", [("get_weather", '{"city": "Pa')]),
    ("hermes3", '<tool_call>\n{"name": "get_wea', "", []),  # before the name: nothing
    # a whole call, cut inside its closing marker (found under sampled defaults): the marker's
    # start is not content
    ("hermes3", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
                '</tool_call', "", [("get_weather", '{"city": "Paris"}')]),
    ("hermes3", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n<',
     "", [("get_weather", '{"city": "Paris"}')]),
    ("qwen3coder", "<tool_call>\n<function=get_weather>\n<parameter=city>\nPar", "",
     [("get_weather", "{}")]),
    ("devstral", '[TOOL_CALLS]get_weather[ARGS]{"city": "Par', "",
     [("get_weather", '{"city": "Par')]),
    ("gptoss", '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>'
               '{"city": "Par', "", [("get_weather", '{"city": "Par')]),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("name", "text", "content", "expected"), CUT)
def test_calls_cut_short_stay_calls(name: str, text: str, content: str,
                                    expected: list[tuple[str, str]], size: int) -> None:
    """A call cut by max_tokens is the call so far (its arguments not whole JSON), as vLLM and
    OpenAI answer it (with finish_reason length), in every split; no markup becomes
    content."""
    parser = ChatOutputParser(tools=TOOL_PARSERS[name](TOOLS))
    got_content, _, calls = run(parser, text, size)
    assert got_content == content
    assert [(c["name"], c["arguments"]) for c in calls] == expected
