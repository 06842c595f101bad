"""Gemma 4 tool calls (OVMS's ``gemma4``): calls between special tokens, arguments in Gemma's
own object syntax (bare keys, strings between ``<|"|>`` tokens)::

    <|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|>

Several calls may share one region. A call comes out when its braces close, its arguments
turned into JSON. ``<turn|>`` and ``<|tool_response>`` are not content (as OVMS erases them).
"""

from __future__ import annotations

import json
import re

from ovserve.chat.parsers.base import BufferedToolParser, ParsedDelta, held_prefix
from ovserve.protocol.chat import ToolCallDelta

OPEN, CLOSE, QUOTE = "<|tool_call>", "<tool_call|>", '<|"|>'
ERASED = ("<turn|>", "<|tool_response>")
CALL = re.compile(r"\s*call:([^{\s<]+)\{")
KEY = re.compile(r"\s*([^:{}\[\],\s]+)\s*:")


def object_end(text: str, start: int) -> int | None:
    """The index after the ``{...}`` opening at ``text[start]`` (strings skipped)."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith(QUOTE, i):
            end = text.find(QUOTE, i + len(QUOTE))
            if end < 0:
                return None
            i = end + len(QUOTE)
            continue
        if text[i] in "{[":
            depth += 1
        elif text[i] in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def to_json(text: str) -> str | None:
    """Gemma's ``{key:<|"|>text<|"|>,n:1}`` as JSON text; None if it is not that syntax."""
    out, stack, i = [], [], 0
    while i < len(text):
        if text.startswith(QUOTE, i):
            end = text.find(QUOTE, i + len(QUOTE))
            if end < 0:
                return None
            out.append(json.dumps(text[i + len(QUOTE):end]))
            i = end + len(QUOTE)
            continue
        char = text[i]
        if char in "{[":
            stack.append(char)
        elif char in "}]":
            if not stack:
                return None
            stack.pop()
        out.append(char)
        i += 1
        if char in "{," and stack and stack[-1] == "{":
            key = KEY.match(text, i)
            if key is not None and not text.startswith(QUOTE, i):
                out.append(json.dumps(key.group(1)) + ":")
                i = key.end()
    result = "".join(out)
    try:
        json.loads(result)
    except ValueError:
        return None
    return result


class Gemma4ToolParser(BufferedToolParser):
    name = "gemma4"
    special_tokens = True
    trigger = OPEN

    def _end(self, out: ParsedDelta) -> None:
        if self.state == "text":
            out.content += self._erase(self.buffer)

    @staticmethod
    def _erase(text: str) -> str:
        for marker in ERASED:
            text = text.replace(marker, "")
        return text

    def _step(self, out: ParsedDelta, final: bool) -> bool:
        buf = self.buffer
        if self.state == "text":
            found = [(buf.find(m), m) for m in (OPEN, *ERASED) if m in buf]
            if found:
                at, marker = min(found)
                out.content += buf[:at]
                self.buffer = buf[at + len(marker):]
                if marker == OPEN:
                    self.state = "region"
                return True
            keep = 0 if final else max(held_prefix(buf, m) for m in (OPEN, *ERASED))
            out.content += buf[:len(buf) - keep]
            self.buffer = buf[len(buf) - keep:]
            return False
        stripped = buf.lstrip()
        if stripped.startswith(CLOSE):
            self.buffer, self.state = stripped[len(CLOSE):], "text"
            return True
        call = CALL.match(buf)
        if call is None:
            if CLOSE in buf:  # not a call: skip to the region's end
                self.buffer, self.state = buf[buf.find(CLOSE) + len(CLOSE):], "text"
                return True
            return False
        end = object_end(buf, call.end() - 1)
        if end is None:
            return False
        arguments = to_json(buf[call.end() - 1:end])
        if arguments is not None:
            delta = self.new_call(call.group(1))
            out.tool_calls += [delta, ToolCallDelta(index=delta.index, arguments=arguments)]
        self.buffer = buf[end:]
        return True
