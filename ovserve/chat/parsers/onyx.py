"""Onyx's turns (OVMS's ``onyx`` tool and reasoning parser): messages routed to a recipient,
ended by ``<|eom|>`` (more follows) or ``<|eot|>`` (the turn's end)::

     to=self<|message|>I should look up the weather.<|eom|>
     to=get_weather<|message|><atem:function_calls>
    <atem:invoke name="get_weather">
    <atem:parameter name="city">Paris</atem:parameter>
    </atem:invoke>
    </atem:function_calls><|eom|>

A message to ``self`` is reasoning; an ``<atem:function_calls>`` block holds calls (the name
is the invoke's; values typed by the tool's schema, as Qwen3-Coder's); other text is content.
"""

from __future__ import annotations

import re

from ovserve.chat.parsers.base import ParameterCallParser, ParsedDelta, held_prefix
from ovserve.protocol.chat import Tool

MESSAGE, ENDS = "<|message|>", ("<|eom|>", "<|eot|>")
CALLS, CALLS_END = "<atem:function_calls>", "</atem:function_calls>"
INVOKE = re.compile(r'<atem:invoke name="([^"]+)">')
PARAMETER = re.compile(r'<atem:parameter name="([^"]+)">(.*?)</atem:parameter>', re.DOTALL)
INVOKE_END = "</atem:invoke>"
RECIPIENT = re.compile(r"to=(\S+)")


class OnyxParser(ParameterCallParser):
    name = "onyx"
    special_tokens = True

    def __init__(self, tools: tuple[Tool, ...] = (), calls: bool = True) -> None:
        super().__init__(tools)  # states: header | content | reasoning | calls | invoke
        self.state = "header"
        self.parse_calls = calls

    def _end(self, out: ParsedDelta) -> None:
        if self.state == "invoke":
            out.tool_calls.append(self.close_arguments())
        elif self.state == "content":
            out.content += self.buffer
        elif self.state == "reasoning":
            out.reasoning += self.buffer

    def _step(self, out: ParsedDelta, final: bool) -> bool:
        buf = self.buffer
        if self.state == "header":  # " to=RECIPIENT" up to <|message|>
            at = buf.find(MESSAGE)
            if at < 0:
                stripped = buf.lstrip()
                envelope = (stripped.startswith("to=") or "to=".startswith(stripped)
                            or MESSAGE.startswith(stripped[:len(MESSAGE)]))
                if envelope and final:
                    self.buffer = ""  # a header cut short is not content
                if envelope or not stripped:
                    return False
                self.state = "content"  # no envelope: plain text
                return True
            recipient = RECIPIENT.search(buf[:at])
            self.state = "reasoning" if recipient and recipient.group(1) == "self" \
                else "content"
            self.buffer = buf[at + len(MESSAGE):]
            return True
        if self.state in ("content", "reasoning"):
            markers = ENDS + ((CALLS,) if self.state == "content" else ())
            hits = [(buf.find(m), m) for m in markers if m in buf]
            if hits:
                at, marker = min(hits)
                self._text(out, buf[:at])
                self.buffer = buf[at + len(marker):]
                self.state = "calls" if marker == CALLS else "header"
                return True
            keep = 0 if final else max(held_prefix(buf, m) for m in markers)
            self._text(out, buf[:len(buf) - keep])
            self.buffer = buf[len(buf) - keep:]
            return False
        if self.state == "calls":
            invoke = INVOKE.search(buf)
            end = buf.find(CALLS_END)
            if invoke is not None and (end < 0 or invoke.start() < end):
                self.function = invoke.group(1)
                if self.parse_calls:
                    delta = self.new_call(self.function)
                    out.tool_calls.append(delta)
                    self.index = delta.index
                self.members = 0
                self.buffer, self.state = buf[invoke.end():], "invoke"
                return True
            if end >= 0:
                self.buffer, self.state = buf[end + len(CALLS_END):], "content"
                return True
            return False
        found = PARAMETER.search(buf)
        end = buf.find(INVOKE_END)
        if found is not None and (end < 0 or found.start() < end):
            if self.parse_calls:
                out.tool_calls.append(self.argument(found.group(1), found.group(2)))
            self.buffer = buf[found.end():]
            return True
        if end >= 0:
            if self.parse_calls:
                out.tool_calls.append(self.close_arguments())
            self.buffer, self.state = buf[end + len(INVOKE_END):], "calls"
            return True
        return False

    def _text(self, out: ParsedDelta, text: str) -> None:
        if self.state == "reasoning":
            out.reasoning += text
        else:
            out.content += text
