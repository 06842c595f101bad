"""Reasoning between ``<think>`` and ``</think>`` (OVMS's ``qwen3``; DeepSeek-R1 and Phi-4
reasoning write the same): the text in the tags is reasoning, the rest content. When the
prompt already opened the tag (templates that append ``<think>``), output starts inside it.

openvino-genai's ``ReasoningIncrementalParser`` was tried and not used: what it puts in
``content`` depends on how the text is split into pieces (2-character pieces give ``"T"``,
1-character ones ``""`` for the same text), and text before a ``<think>`` is dropped.
"""

from __future__ import annotations

from ovserve.chat.parsers.base import held_prefix

WHITESPACE = " \t\r\n"


class ThinkParser:
    """Splits one choice's output into (reasoning, content) as it streams."""

    name = "qwen3"

    def __init__(self, opening: str = "<think>", closing: str = "</think>",
                 inside: bool = False) -> None:
        self.opening, self.closing = opening, closing
        self.state = "reasoning" if inside else "start"  # start | reasoning | after | content
        self.buffer = ""

    def feed(self, text: str) -> tuple[str, str]:
        self.buffer += text
        reasoning = content = ""
        while True:
            buf = self.buffer
            if self.state == "start":
                stripped = buf.lstrip(WHITESPACE)
                if stripped.startswith(self.opening):
                    self.buffer, self.state = stripped[len(self.opening):], "reasoning"
                    continue
                if self.opening.startswith(stripped):
                    return reasoning, content  # the tag may be arriving
                self.state = "content"
                continue
            if self.state == "reasoning":
                at = buf.find(self.closing)
                if at >= 0:
                    reasoning += buf[:at]
                    self.buffer, self.state = buf[at + len(self.closing):], "after"
                    continue
                keep = held_prefix(buf, self.closing)
                reasoning += buf[:len(buf) - keep]
                self.buffer = buf[len(buf) - keep:]
                return reasoning, content
            if self.state == "after":  # the whitespace after </think> is not content
                stripped = buf.lstrip(WHITESPACE)
                self.buffer = stripped
                if not stripped:
                    return reasoning, content
                self.state = "content"
                continue
            content += buf
            self.buffer = ""
            return reasoning, content

    def finish(self) -> tuple[str, str]:
        buf, self.buffer = self.buffer, ""
        if self.state == "reasoning":
            return buf, ""
        if self.state == "after":
            return "", ""
        return "", buf
