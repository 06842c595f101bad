"""What a parser of generated text gives, and helpers every parser uses."""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ovserve.protocol.chat import Tool, ToolCallDelta


@dataclass
class ParsedDelta:
    """What new output text turned out to be: answer text, reasoning, tool call pieces."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)

    def add(self, other: ParsedDelta) -> None:
        self.content += other.content
        self.reasoning += other.reasoning
        self.tool_calls += other.tool_calls

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)


def call_id() -> str:
    """A tool call's id, as OpenAI's look (``call_`` and 24 characters)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def held_prefix(text: str, marker: str) -> int:
    """How many characters at the end of ``text`` could begin ``marker`` (kept back until the
    next piece says whether the marker comes)."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


class ToolParser(ABC):
    """Incremental parser of one choice's output into content and tool calls: ``feed`` each
    new piece of text, then ``finish`` once. Whatever the pieces, the same calls come out."""

    #: OVMS's name for the format (the graph's ``tool_parser``)
    name: str = ""
    #: its markers are special tokens: it reads text that keeps them (OVMS's
    #: requiresStreamingWithSpecialTokens)
    special_tokens: bool = False

    def __init__(self, tools: tuple[Tool, ...] = ()) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.calls = 0  # calls begun so far

    @abstractmethod
    def feed(self, text: str) -> ParsedDelta: ...

    @abstractmethod
    def finish(self) -> ParsedDelta: ...

    @classmethod
    def tag(cls, tool: Tool) -> dict[str, Any]:
        """The structural tag (XGrammar's format, which openvino-genai takes) of one call of
        ``tool`` in this format: its fixed opening, its arguments' schema, its closing."""
        raise NotImplementedError(f"tool_parser {cls.name} has no guided generation")

    @classmethod
    def guides(cls) -> bool:
        """Whether calls in this format can be constrained (it has a ``tag``)."""
        return cls.tag.__func__ is not ToolParser.tag.__func__  # type: ignore[attr-defined]

    #: what may come between two forced calls, and what opens a call (triggers guidance)
    separator: str = "\n"
    trigger: str = ""


class BufferedToolParser(ToolParser):
    """A ``ToolParser`` as a state machine over a text buffer: ``_step`` consumes what can be
    decided and says whether the state changed; ``feed`` and ``finish`` run it until it stops,
    then ``finish`` hands what is left to ``_end``."""

    def __init__(self, tools: tuple[Tool, ...] = ()) -> None:
        super().__init__(tools)
        self.buffer = ""
        self.state = "text"

    def feed(self, text: str) -> ParsedDelta:
        self.buffer += text
        out = ParsedDelta()
        while self._step(out, final=False):
            pass
        return out

    def finish(self) -> ParsedDelta:
        out = ParsedDelta()
        while self._step(out, final=True):
            pass
        self._end(out)
        self.buffer = ""
        return out

    @abstractmethod
    def _step(self, out: ParsedDelta, final: bool) -> bool: ...

    def _end(self, out: ParsedDelta) -> None:
        """What the buffer still holds when the output ends (``finish``)."""
        if self.state == "text":
            out.content += self.buffer

    def _text_until(self, out: ParsedDelta, marker: str, final: bool, then: str) -> bool:
        """In text: content up to ``marker``, after which the state is ``then``; the end of
        the buffer that could begin ``marker`` is held back until the next piece."""
        buf = self.buffer
        at = buf.find(marker)
        if at >= 0:
            out.content += buf[:at]
            self.buffer, self.state = buf[at + len(marker):], then
            return True
        keep = 0 if final else held_prefix(buf, marker)
        out.content += buf[:len(buf) - keep]
        self.buffer = buf[len(buf) - keep:]
        return False

    def new_call(self, name: str) -> ToolCallDelta:
        delta = ToolCallDelta(index=self.calls, id=call_id(), name=name)
        self.calls += 1
        return delta


class ParameterCallParser(BufferedToolParser):
    """Calls whose parameters are written one by one as text (Qwen3-Coder's XML, MiniCPM,
    Onyx), streamed as the JSON arguments they make: ``{`` and each member as its parameter
    ends, ``}`` (or ``{}``) when the call does."""

    def __init__(self, tools: tuple[Tool, ...] = ()) -> None:
        super().__init__(tools)
        self.index = -1  # the call being read
        self.function = ""
        self.members = 0  # its parameters so far

    def typed_value(self, function: str, parameter: str, text: str) -> Any:
        """A parameter's value written as plain text (XML-style formats: Qwen3-Coder, MiniCPM,
        Onyx), typed by the tool's schema: text for strings and unknown parameters, else its
        JSON value when it reads as JSON, else the text."""
        tool = self.tools.get(function)
        kind = None
        if tool is not None:
            kind = tool.parameters.get("properties", {}).get(parameter, {}).get("type")
        if kind in (None, "string"):
            return text
        try:
            return json.loads(text)
        except ValueError:
            return text

    def argument(self, name: str, text: str) -> ToolCallDelta:
        """The current call's next member, ``"name": value``, as an arguments piece."""
        value = self.typed_value(self.function, name, text)
        opening = "{" if not self.members else ", "
        self.members += 1
        return ToolCallDelta(index=self.index,
                             arguments=opening + json.dumps(name) + ": " + json.dumps(value))

    def close_arguments(self) -> ToolCallDelta:
        """The piece that ends the current call's arguments."""
        return ToolCallDelta(index=self.index, arguments="}" if self.members else "{}")
