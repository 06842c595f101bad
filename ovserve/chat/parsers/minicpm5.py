"""MiniCPM5 tool calls (OVMS's ``minicpm5``): XML functions with typed parameters::

    <function name="get_weather"><param name="city">Paris</param><param name="days">3</param>
    </function>

A parameter's value is text; one the tool's schema types as anything but a string is read as
JSON when it parses (as Qwen3-Coder's). Arguments stream as a JSON object, a member per
parameter. Its <think> tags are special tokens (reasoning_parser minicpm5), so the text keeps
them.
"""

from __future__ import annotations

import re
from typing import Any

from ovserve.chat.parsers.base import ParameterCallParser, ParsedDelta

OPEN = "<function"
FUNCTION = re.compile(r"""<function\s+name=["']([^"'>]+)["']\s*>""")
PARAMETER = re.compile(r"""<param\s+name=["']([^"'>]+)["']\s*>(.*?)</param>""", re.DOTALL)
FUNCTION_END = "</function>"


class Minicpm5ToolParser(ParameterCallParser):
    name = "minicpm5"
    special_tokens = True
    trigger = OPEN

    def __init__(self, tools: tuple[Any, ...] = ()) -> None:
        super().__init__(tools)  # states: text | function

    def _end(self, out: ParsedDelta) -> None:
        if self.state == "function":  # cut short: close what was sent
            out.tool_calls.append(self.close_arguments())
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
            out.tool_calls.append(self.argument(found.group(1), found.group(2)))
            self.buffer = buf[found.end():]
            return True
        if end >= 0:
            out.tool_calls.append(self.close_arguments())
            self.buffer, self.state = buf[end + len(FUNCTION_END):], "text"
            return True
        return False
