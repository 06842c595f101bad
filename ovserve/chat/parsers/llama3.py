"""Llama 3.1 / 3.2 JSON tool calls (OVMS's ``llama3``): the output starts with a JSON object
(or ``<|python_tag|>``, when it is not skipped as a special token), calls apart by ``;``::

    {"name": "get_weather", "parameters": {"city": "Paris"}}
"""

from __future__ import annotations

from typing import Any

from ovserve.chat.parsers.json_calls import JsonCallsParser, json_call_tag
from ovserve.protocol.chat import Tool


class Llama3ToolParser(JsonCallsParser):
    name = "llama3"
    opening = "<|python_tag|>"
    bare_start = "{"
    separator = "; "
    trigger = '{"name": '

    @classmethod
    def tag(cls, tool: Tool) -> dict[str, Any]:
        return json_call_tag("", tool.name, tool.parameters, "", argument_key="parameters")
