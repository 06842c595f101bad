"""Mistral tool calls (OVMS's ``mistral``): a JSON array after ``[TOOL_CALLS]`` (or, when that
token is skipped as special, an array opening the output)::

    [TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]
"""

from __future__ import annotations

from typing import Any

from ovserve.chat.parsers.json_calls import JsonCallsParser, json_call_tag
from ovserve.protocol.chat import Tool


class MistralToolParser(JsonCallsParser):
    name = "mistral"
    opening = "[TOOL_CALLS]"
    closing = "]"
    bare_start = "["
    trigger = "[TOOL_CALLS]"
    separator = ""

    @classmethod
    def tag(cls, tool: Tool) -> dict[str, Any]:
        return json_call_tag("[TOOL_CALLS][", tool.name, tool.parameters, "]")
