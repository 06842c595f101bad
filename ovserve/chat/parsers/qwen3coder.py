"""Qwen3-Coder XML tool calls (OVMS's ``qwen3coder``)::

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>

Parameter values are text; a parameter the tool's schema types as anything but a string is
read as JSON when it parses. Arguments stream as a JSON object, a member per parameter.
"""

from __future__ import annotations

import re
from typing import Any

from ovserve.chat.parsers.base import ParameterCallParser, ParsedDelta
from ovserve.protocol.chat import Tool

OPEN, CLOSE = "<tool_call>", "</tool_call>"
FUNCTION = re.compile(r"<function=([^>\n]+)>")
PARAMETER = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>", re.DOTALL)
FUNCTION_END = "</function>"


class Qwen3CoderToolParser(ParameterCallParser):
    name = "qwen3coder"
    trigger = OPEN

    def __init__(self, tools: tuple[Tool, ...] = ()) -> None:
        super().__init__(tools)  # states: text | call (inside <tool_call>) | function
        self.scanned = 0  # characters of a function's text looked at for a closing tag

    def _end(self, out: ParsedDelta) -> None:
        if self.state == "function":  # cut short: close what was sent
            out.tool_calls.append(self.close_arguments())
        elif self.state == "text":
            out.content += self.buffer

    def _step(self, out: ParsedDelta, final: bool) -> bool:
        buf = self.buffer
        if self.state == "text":
            return self._text_until(out, OPEN, final, "call")
        if self.state == "call":
            found = FUNCTION.search(buf)
            stripped = buf.lstrip()
            if stripped.startswith(CLOSE):
                self.buffer, self.state = stripped[len(CLOSE):], "text"
                return True
            if found is None:
                return False
            self.function = found.group(1).strip()
            delta = self.new_call(self.function)
            self.index, self.members = delta.index, 0
            out.tool_calls.append(delta)
            self.buffer, self.state, self.scanned = buf[found.end():], "function", 0
            return True
        # a long parameter arrives in many pieces: look for its end in the new text only
        since = max(self.scanned - len(FUNCTION_END) - 1, 0)
        self.scanned = len(buf)
        if "</parameter>" not in buf[since:] and FUNCTION_END not in buf[since:]:
            return False
        found = PARAMETER.search(buf)
        end = buf.find(FUNCTION_END)
        if found is not None and (end < 0 or found.start() < end):
            out.tool_calls.append(self.argument(found.group(1).strip(), found.group(2)))
            self.buffer, self.scanned = buf[found.end():], 0
            return True
        if end >= 0:
            out.tool_calls.append(self.close_arguments())
            self.buffer, self.state = buf[end + len(FUNCTION_END):], "call"
            return True
        return False

    @classmethod
    def tag(cls, tool: Tool) -> dict[str, Any]:
        return {"type": "tag", "begin": f"{OPEN}\n<function={tool.name}>\n",
                "content": {"type": "qwen_xml_parameter", "json_schema": tool.parameters},
                "end": f"</function>\n{CLOSE}"}
