"""The output parsers by OVMS's names (the graph's ``tool_parser`` / ``reasoning_parser``)."""

from __future__ import annotations

from ovserve.chat.parsers.base import ParsedDelta, ToolParser
from ovserve.chat.parsers.devstral import DevstralToolParser
from ovserve.chat.parsers.hermes3 import Hermes3ToolParser
from ovserve.chat.parsers.llama3 import Llama3ToolParser
from ovserve.chat.parsers.mistral import MistralToolParser
from ovserve.chat.parsers.phi4 import Phi4ToolParser
from ovserve.chat.parsers.qwen3coder import Qwen3CoderToolParser
from ovserve.chat.parsers.think import ThinkParser

__all__ = ["REASONING_PARSERS", "TOOL_PARSERS", "ParsedDelta", "ThinkParser", "ToolParser"]

TOOL_PARSERS: dict[str, type[ToolParser]] = {cls.name: cls for cls in (
    Hermes3ToolParser, Llama3ToolParser, MistralToolParser, Phi4ToolParser,
    Qwen3CoderToolParser, DevstralToolParser)}
#: reasoning formats by OVMS's names: the tags around the reasoning
REASONING_PARSERS: dict[str, tuple[str, str]] = {"qwen3": ("<think>", "</think>")}
