"""MiniCPM5 tool calls (OVMS's ``minicpm5``): XML functions with typed parameters::

    <function name="get_weather"><param name="city">Paris</param><param name="days">3</param>
    </function>

A parameter's value is text; one the tool's schema types as anything but a string is read as
JSON when it parses (as Qwen3-Coder's). Arguments stream as a JSON object, a member per
parameter. Its <think> tags are special tokens (reasoning_parser minicpm5), so the text keeps
them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ovserve.chat.parsers.base import BufferedToolParser, ParsedDelta
from ovserve.protocol.chat import ToolCallDelta

OPEN = "<function"
FUNCTION = re.compile(r"""<function\s+name=["']([^"'>]+)["']\s*>""")
PARAMETER = re.compile(r"""<param\s+name=["']([^"'>]+)["']\s*>(.*?)</param>""", re.DOTALL)
FUNCTION_END = "</function>"


class Minicpm5ToolParser(BufferedToolParser):
    name = "minicpm5"
    special_tokens = True
    trigger = OPEN

    def __init__(self, tools: tuple[Any, ...] = ()) -> None:
        super().__init__(tools)  # states: text | function
        self.index = -1
        self.function = ""
        self.members = 0

    def _end(self, out: ParsedDelta) -> None:
        if self.state == "function":  # cut short: close what was sent
            out.tool_calls.append(ToolCallDelta(index=self.index,
                                                arguments="}" if self.members else "{}"))
        elif self.state == "text":
            out.content += self.buffer

    def _step(self, out: ParsedDelta, final: bool) -> bool:
        buf = self.buffer
        if self.state == "text":
            at = buf.find(OPEN)
            if at >= 0:
                found = FUNCTION.match(buf, at)
                if found is None and (final or ">" in buf[at:]):  # not a call: text
                    out.content += buf[:at + len(OPEN)]
                    self.buffer = buf[at + len(OPEN):]
                    return True
                if found is None:
                    out.content += buf[:at]
                    self.buffer = buf[at:]
                    return False
                out.content += buf[:at]
                self.function = found.group(1)
                delta = self.new_call(self.function)
                self.index, self.members = delta.index, 0
                out.tool_calls.append(delta)
                self.buffer, self.state = buf[found.end():], "function"
                return True
            return self._text_until(out, OPEN, final, "text")
        found = PARAMETER.search(buf)
        end = buf.find(FUNCTION_END)
        if found is not None and (end < 0 or found.start() < end):
            name = found.group(1)
            value = self.typed_value(self.function, name, found.group(2))
            member = json.dumps(name) + ": " + json.dumps(value)
            out.tool_calls.append(ToolCallDelta(
                index=self.index, arguments=("{" if not self.members else ", ") + member))
            self.members += 1
            self.buffer = buf[found.end():]
            return True
        if end >= 0:
            out.tool_calls.append(ToolCallDelta(index=self.index,
                                                arguments="}" if self.members else "{}"))
            self.buffer, self.state = buf[end + len(FUNCTION_END):], "text"
            return True
        return False
