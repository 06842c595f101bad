"""Phi-4-mini tool calls (OVMS's ``phi4``): a JSON array after ``functools``::

    functools[{"name": "get_weather", "arguments": {"city": "Paris"}}]
"""

from __future__ import annotations

from typing import Any

from ovserve.chat.parsers.json_calls import JsonCallsParser, json_call_tag
from ovserve.protocol.chat import Tool


class Phi4ToolParser(JsonCallsParser):
    name = "phi4"
    opening = "functools["
    closing = "]"
    trigger = "functools["
    separator = ""

    @classmethod
    def tag(cls, tool: Tool) -> dict[str, Any]:
        return json_call_tag("functools[", tool.name, tool.parameters, "]")
