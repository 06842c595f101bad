"""Hermes 3 / Qwen 2.5 / Qwen 3 tool calls (OVMS's ``hermes3``)::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>
"""

from __future__ import annotations

from typing import Any

from ovserve.chat.parsers.json_calls import JsonCallsParser, json_call_tag
from ovserve.protocol.chat import Tool


class Hermes3ToolParser(JsonCallsParser):
    name = "hermes3"
    opening = "<tool_call>"
    closing = "</tool_call>"
    trigger = "<tool_call>"

    @classmethod
    def tag(cls, tool: Tool) -> dict[str, Any]:
        # as OVMS's Hermes3GenerationConfigBuilder writes it
        return json_call_tag("<tool_call>\n", tool.name, tool.parameters, "\n</tool_call>")
