"""The parsers a chat template implies, as OVMS's ChatTemplateAnalyzer reads them
(src/llm/io_processing/chat_template/analyzer.cpp), for the formats ovserve parses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Detected:
    tool_parser: str | None = None
    reasoning_parser: str | None = None

    @property
    def renders_tools(self) -> bool:
        return self.tool_parser is not None


def _think(source: str) -> bool:
    return "<think>" in source or "content.split('</think>')" in source


def detect(source: str) -> Detected:
    """The tool and reasoning parsers for a template's source (None: none detected)."""
    if not source:
        return Detected()
    reasoning = "qwen3" if _think(source) else None
    if "<|channel|>" in source:  # harmony (gpt-oss): one parser reads the whole output
        return Detected("gptoss", "gptoss")
    if all(m in source for m in ("<|start|>", "<|message|>", "<|eom|>", "<|eot|>")):
        return Detected("onyx", "onyx")
    if "<|tool_call>call:" in source:  # Gemma 4
        return Detected("gemma4", "gemma4")
    if "<parameter=" in source and "</parameter>" in source and "<function=" in source:
        return Detected("qwen3coder", "qwen3" if "</think>" in source else reasoning)
    if '<param name="' in source:  # MiniCPM5
        return Detected("minicpm5", "minicpm5")
    if any(m in source for m in ("<|assistant_tool_call|>", "<|tool_call_start|>",
                                 "keep_past_thinking")):
        return Detected("lfm2", "lfm2" if "message.thinking" in source else None)
    if "functools" in source:
        return Detected("phi4")
    if "[TOOL_CALLS]" in source and "[ARGS]" in source:
        return Detected("devstral")
    if "[TOOL_CALLS]" in source or ("[AVAILABLE_TOOLS]" in source
                                    and "[/AVAILABLE_TOOLS]" in source):
        return Detected("mistral")
    if "<|python_tag|>" in source:
        return Detected("llama3")
    if "<tool_call>" in source and "</tool_call>" in source:
        return Detected("hermes3", reasoning)
    return Detected(None, reasoning)
