"""The output parsers by OVMS's names (the graph's ``tool_parser`` / ``reasoning_parser``)."""

from __future__ import annotations

from dataclasses import dataclass

from ovserve.chat.parsers.base import ParsedDelta, ToolParser
from ovserve.chat.parsers.devstral import DevstralToolParser
from ovserve.chat.parsers.gemma4 import Gemma4ToolParser
from ovserve.chat.parsers.harmony import HarmonyParser
from ovserve.chat.parsers.hermes3 import Hermes3ToolParser
from ovserve.chat.parsers.lfm2 import Lfm2ToolParser
from ovserve.chat.parsers.llama3 import Llama3ToolParser
from ovserve.chat.parsers.minicpm5 import Minicpm5ToolParser
from ovserve.chat.parsers.mistral import MistralToolParser
from ovserve.chat.parsers.onyx import OnyxParser
from ovserve.chat.parsers.phi4 import Phi4ToolParser
from ovserve.chat.parsers.qwen3coder import Qwen3CoderToolParser
from ovserve.chat.parsers.think import ThinkParser

__all__ = ["FORMAT_PARSERS", "REASONING_NAMES", "REASONING_PARSERS", "TOOL_PARSERS",
           "FormatParser", "HarmonyParser", "OnyxParser", "ParsedDelta", "ReasoningTags",
           "ThinkParser", "ToolParser"]

TOOL_PARSERS: dict[str, type[ToolParser]] = {cls.name: cls for cls in (
    Hermes3ToolParser, Llama3ToolParser, MistralToolParser, Phi4ToolParser,
    Qwen3CoderToolParser, DevstralToolParser, HarmonyParser, Lfm2ToolParser, Gemma4ToolParser,
    Minicpm5ToolParser, OnyxParser)}


@dataclass(frozen=True)
class ReasoningTags:
    """The tags around a model's reasoning; ``special``: they are special tokens."""

    opening: str
    closing: str
    special: bool = False


THINK = ReasoningTags("<think>", "</think>")
#: reasoning formats by OVMS's names (as OVMS's parsers read them)
REASONING_PARSERS: dict[str, ReasoningTags] = {
    "qwen3": THINK,
    "lfm2": ReasoningTags("<think>", "</think>", special=True),  # LFM2.5's tokens 124901/2
    "minicpm5": ReasoningTags("<think>", "</think>", special=True),  # MiniCPM5's 8/9
    "gemma4": ReasoningTags("<|channel>thought\n", "<channel|>", special=True),
}
#: a parser of a whole output format (content, reasoning and calls)
FormatParser = HarmonyParser | OnyxParser
#: the format parsers, by both names (tool_parser and reasoning_parser)
FORMAT_PARSERS: dict[str, type[FormatParser]] = {"gptoss": HarmonyParser, "onyx": OnyxParser}
REASONING_NAMES = (*REASONING_PARSERS, *FORMAT_PARSERS)
