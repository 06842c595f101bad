"""Devstral / Mistral Small 3.2 tool calls (OVMS's ``devstral``)::

    [TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}
"""

from __future__ import annotations

from typing import Any

from ovserve.chat.parsers.base import BufferedToolParser, ParsedDelta
from ovserve.chat.parsers.json_calls import WHITESPACE, ValueScanner
from ovserve.protocol.chat import Tool, ToolCallDelta

OPEN, ARGS = "[TOOL_CALLS]", "[ARGS]"


class DevstralToolParser(BufferedToolParser):
    name = "devstral"
    special_tokens = True  # [TOOL_CALLS] and [ARGS] are special tokens
    trigger = OPEN
    separator = ""

    def __init__(self, tools: tuple[Tool, ...] = ()) -> None:
        super().__init__(tools)  # states: text | name | args
        self.index = -1
        self.sent = 0
        self.scanner: ValueScanner | None = None

    def _end(self, out: ParsedDelta) -> None:
        if self.state == "name":
            out.content += OPEN
        if self.state != "args":
            out.content += self.buffer

    def _step(self, out: ParsedDelta, final: bool) -> bool:
        buf = self.buffer
        if self.state == "text":
            return self._text_until(out, OPEN, final, "name")
        if self.state == "name":
            at = buf.find(ARGS)
            if at < 0:
                return False
            delta = self.new_call(buf[:at].strip())
            out.tool_calls.append(delta)
            self.index, self.sent = delta.index, 0
            self.buffer, self.state = buf[at + len(ARGS):].lstrip(WHITESPACE), "args"
            return True
        if not buf:
            return False
        if buf[0] in "{[":
            if self.scanner is None:
                self.scanner = ValueScanner(0)
            end = self.scanner.advance(buf)  # only the new text is read
        else:
            end = 0
        raw = buf[:end] if end else buf
        if len(raw) > self.sent:
            out.tool_calls.append(ToolCallDelta(index=self.index, arguments=raw[self.sent:]))
            self.sent = len(raw)
        if end is not None:
            self.buffer, self.state, self.scanner = buf[end:], "text", None
            return True
        return False

    @classmethod
    def tag(cls, tool: Tool) -> dict[str, Any]:
        return {"type": "tag", "begin": f"{OPEN}{tool.name}{ARGS}",
                "content": {"type": "json_schema", "json_schema": tool.parameters}, "end": ""}
