"""Which parsers a chat request gets, and whether the engine's text must keep special tokens
for them (formats whose markers are special tokens: gpt-oss's harmony, Devstral, LFM2, the
reasoning tags of Gemma 4, LFM2.5 and MiniCPM5)."""

from __future__ import annotations

from typing import Any

import pytest

from ovserve.chat.parsers import HarmonyParser
from ovserve.chat.plan import ChatConfig, plan
from ovserve.errors import InvalidInput
from ovserve.protocol.chat import ChatSettings, Tool

WEATHER = Tool("get_weather", None, {"type": "object", "properties": {
    "city": {"type": "string"}}})
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]


class Renderer:
    """A chat template that writes the messages' text (the parsers come from the config)."""

    def __init__(self, template: str = "{{ messages }}") -> None:
        self.chat_template = template

    def render_chat(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
                    chat_template: str, tools: list[dict[str, Any]] | None,
                    extra_context: dict[str, Any]) -> str:
        return " ".join(str(m["content"]) for m in messages)


@pytest.mark.parametrize(("tool_parser", "reasoning_parser", "tools", "keep"), [
    ("hermes3", "qwen3", True, False),
    ("devstral", None, True, True),
    ("devstral", None, False, False),  # no tools asked for: no calls parsed
    ("lfm2", None, True, True),
    ("gemma4", "gemma4", True, True),
    ("minicpm5", None, True, True),
    (None, "onyx", False, True),
    ("gptoss", None, False, True),  # harmony is parsed whether or not tools are asked for
    (None, "gptoss", False, True),
    (None, "gemma4", False, True),
    (None, "qwen3", False, False),
])
def test_special_tokens_kept_for_the_parsers_that_read_them(
        tool_parser: str | None, reasoning_parser: str | None, tools: bool, keep: bool) -> None:
    settings = ChatSettings(tools=(WEATHER,) if tools else ())
    chat = plan(Renderer(), MESSAGES, settings, ChatConfig(tool_parser, reasoning_parser))
    assert chat.keep_special is keep
    assert chat.parses is (tools or reasoning_parser is not None or tool_parser == "gptoss")


def test_harmony_parses_calls_only_when_asked() -> None:
    for tools, calls in (((WEATHER,), True), ((), False)):
        chat = plan(Renderer(), MESSAGES, ChatSettings(tools=tools), ChatConfig("gptoss"))
        parser = chat.output_parser().tools
        assert isinstance(parser, HarmonyParser) and parser.parse_calls is calls


def test_detected_from_the_template() -> None:
    chat = plan(Renderer("{{ '<|start|>assistant<|channel|>final<|message|>' }}"), MESSAGES,
                ChatSettings(tools=(WEATHER,)), ChatConfig())
    assert chat.output_format is HarmonyParser and chat.tool_parser is HarmonyParser


@pytest.mark.parametrize("choice, named", [("required", False), ("get_weather", True)])
def test_forced_call_without_guidance_is_a_400(choice: str, named: bool) -> None:
    settings = ChatSettings(tools=(WEATHER,), tool_choice=choice, named_tool=named)
    with pytest.raises(InvalidInput, match="tool_parser gptoss") as error:
        plan(Renderer(), MESSAGES, settings, ChatConfig("gptoss"))
    assert error.value.param == "tool_choice"


def test_forced_call_replaces_the_requests_own_constraint() -> None:
    """A required tool choice beside response_format (the Agents SDK sends both): the call's
    structural tag is the constraint (the answer is calls, no text to shape)."""
    settings = ChatSettings(tools=(WEATHER,), tool_choice="required")
    chat = plan(Renderer(), MESSAGES, settings, ChatConfig("hermes3"), structured=True)
    assert chat.structured is not None and chat.structured[0] == "structural_tags_config"
    auto = plan(Renderer(), MESSAGES, ChatSettings(tools=(WEATHER,)),
                ChatConfig("hermes3", enable_tool_guided_generation=True), structured=True)
    assert auto.structured is None  # auto: the request's own constraint stays
