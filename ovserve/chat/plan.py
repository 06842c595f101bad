"""A chat request made ready to run: its prompt, the structured-output constraint its tool
choice needs, and the output parser of each of its choices.

Parsers: the graph's ``tool_parser`` / ``reasoning_parser`` (OVMS), else the server's, else
what the chat template implies (OVMS's automatic detection); ``"none"`` turns one off. Tool
calls are parsed only for a request with tools and a ``tool_choice`` other than ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ovserve.chat.incremental import ChatOutputParser
from ovserve.chat.parsers import (
    FORMAT_PARSERS,
    REASONING_PARSERS,
    TOOL_PARSERS,
    FormatParser,
    ReasoningTags,
    ThinkParser,
    ToolParser,
)
from ovserve.chat.render import Renderer, render
from ovserve.chat.tools import guidance
from ovserve.errors import InvalidInput
from ovserve.protocol.chat import ChatSettings
from ovserve.protocol.generation import StructuredKind

DISABLED = "none"


@dataclass(frozen=True)
class ChatConfig:
    """A model's chat settings from its graph and the server's flags."""

    tool_parser: str | None = None
    reasoning_parser: str | None = None
    enable_tool_guided_generation: bool = False
    allow_request_template: bool = False  # vLLM's --trust-request-chat-template


@dataclass(frozen=True)
class ChatPlan:
    prompt: str
    #: ("structural_tags_config", JSON text) when tool calls are constrained
    structured: tuple[StructuredKind, str] | None
    tool_parser: type[ToolParser] | None  # when the request's tool calls are parsed
    reasoning: ReasoningTags | None  # the reasoning tags, when reasoning is parsed
    opens_reasoning: bool
    settings: ChatSettings
    #: a parser of the whole output format (gpt-oss's harmony, Onyx's turns), whatever the
    #: request asks
    output_format: type[FormatParser] | None = None

    @property
    def parses(self) -> bool:
        """Whether the output is parsed at all (else its text is the answer's content)."""
        return (self.reasoning is not None or self.tool_parser is not None
                or self.output_format is not None)

    @property
    def keep_special(self) -> bool:
        """Whether the parsers read special tokens (the engine's text must keep them)."""
        return ((self.tool_parser is not None and self.tool_parser.special_tokens)
                or (self.reasoning is not None and self.reasoning.special)
                or self.output_format is not None)

    def output_parser(self) -> ChatOutputParser:
        """A fresh parser for one choice."""
        if self.output_format is not None:
            return ChatOutputParser(None, self.output_format(
                self.settings.tools, calls=self.tool_parser is not None))
        think = None
        if self.reasoning is not None:
            think = ThinkParser(self.reasoning.opening, self.reasoning.closing,
                                inside=self.opens_reasoning)
        tools = self.tool_parser(self.settings.tools) if self.tool_parser else None
        return ChatOutputParser(think, tools)


def _pick(configured: str | None, detected: str | None) -> str | None:
    if configured == DISABLED:
        return None
    return configured or detected


def plan(renderer: Renderer, messages: Sequence[dict[str, Any]], settings: ChatSettings,
         config: ChatConfig, structured: bool = False) -> ChatPlan:
    """Render and decide parsers; ``structured``: the request has its own constraint
    (response_format, guided_*). A required or named tool choice replaces it: the answer is
    calls, with no text for it to shape (the OpenAI Agents SDK sends its output type's schema
    beside a required tool choice on every turn)."""
    if settings.chat_template is not None and not config.allow_request_template:
        raise InvalidInput("chat_template: this server does not take chat templates in "
                           "requests (start it with --trust_request_chat_template)",
                           "chat_template")
    rendered = render(renderer, messages, settings)
    tool_name = _pick(config.tool_parser, rendered.detected.tool_parser)
    reasoning_name = _pick(config.reasoning_parser, rendered.detected.reasoning_parser)
    parser = TOOL_PARSERS.get(tool_name) if tool_name and settings.calls_tools else None
    if settings.forced and parser is None:
        raise InvalidInput(f"tool_choice: {settings.tool_choice!r} needs a tool call format; "
                           "this model's chat template has none ovserve knows (set the "
                           "graph's tool_parser)", "tool_choice")
    constraint: tuple[StructuredKind, str] | None = None
    if settings.forced and parser is not None and not parser.guides():
        raise InvalidInput(f"tool_choice: {settings.tool_choice!r} is constrained with "
                           f"structured output, which ovserve does not write for tool_parser "
                           f"{parser.name} ('auto' works)", "tool_choice")
    if parser is not None and parser.guides():
        guided = config.enable_tool_guided_generation and not structured
        text = guidance(settings, parser, guided)
        if text is not None:  # a forced call has no text for response_format to shape:
            constraint = ("structural_tags_config", text)  # the call's constraint wins
    reasoning = REASONING_PARSERS.get(reasoning_name) if reasoning_name else None
    output_format = FORMAT_PARSERS.get(tool_name or "") or FORMAT_PARSERS.get(
        reasoning_name or "")
    return ChatPlan(rendered.prompt, constraint, parser, reasoning, rendered.opens_reasoning,
                    settings, output_format)
