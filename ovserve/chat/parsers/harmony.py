"""gpt-oss's harmony format (OVMS's ``gptoss`` tool and reasoning parser). The output is a
run of messages, each a header, ``<|message|>``, a body and an end::

    <|channel|>analysis<|message|>The user wants the weather.<|end|>
    <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json
    <|message|>{"city": "Paris"}<|call|>

The ``analysis`` channel is reasoning; ``final`` and ``commentary`` (a preamble) are content;
a message to ``functions.NAME`` is a call of NAME whose body is its arguments. Messages to
other recipients (gpt-oss's built-in browser and python tools) are left out, as OVMS does;
several content (or reasoning) messages are joined by a space, as OVMS does. The markers are
special tokens, so the text must keep them (``special_tokens``); the stop token that ends the
output (``<|return|>``, ``<|call|>``) is left out by the engine, and a message cut short ends
where the output ends.
"""

from __future__ import annotations

import re

from ovserve.chat.parsers.base import BufferedToolParser, ParsedDelta, held_prefix
from ovserve.protocol.chat import Tool, ToolCallDelta

START, CHANNEL, MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
ENDS = ("<|end|>", "<|return|>", "<|call|>")
RECIPIENT = re.compile(r"to=([^\s<]+)")
FUNCTIONS = "functions."


def _first(text: str, markers: tuple[str, ...]) -> tuple[int, str]:
    """The first of ``markers`` in ``text``: (index, marker), or (-1, "")."""
    found = [(text.find(m), m) for m in markers if m in text]
    return min(found) if found else (-1, "")


def _held(text: str, markers: tuple[str, ...]) -> int:
    return max(held_prefix(text, m) for m in markers)


class HarmonyParser(BufferedToolParser):
    name = "gptoss"
    special_tokens = True

    def __init__(self, tools: tuple[Tool, ...] = (), calls: bool = True) -> None:
        """``calls``: messages to functions are tool calls (else they are left out: the
        request asked for no tools)."""
        super().__init__(tools)  # states: text | header | body
        self.parse_calls = calls
        self.kind = ""  # the body being read: content | reasoning | call | skip
        self.index = -1  # the call being read
        self.sent = 0  # characters of its arguments sent
        self.wrote = {"content": False, "reasoning": False}  # a message of each kind so far
        self.opened = False  # the body's message has given its first text

    def _end(self, out: ParsedDelta) -> None:
        if self.state == "text":
            out.content += self.buffer
        elif self.state == "body":  # cut short: the message ends here
            self._body(out, self.buffer)
            self._close(out)

    def _step(self, out: ParsedDelta, final: bool) -> bool:
        buf = self.buffer
        if self.state == "text":  # outside messages (a model that does not write harmony)
            at, marker = _first(buf, (START, CHANNEL))
            if at >= 0:
                out.content += buf[:at]
                # <|channel|> opens a header (the prompt ended with <|start|>assistant)
                self.buffer = buf[at + len(START):] if marker == START else buf[at:]
                self.state = "header"
                return True
            keep = 0 if final else _held(buf, (START, CHANNEL))
            out.content += buf[:len(buf) - keep]
            self.buffer = buf[len(buf) - keep:]
            return False
        if self.state == "header":
            at = buf.find(MESSAGE)
            if at < 0:
                return False
            self._open(out, buf[:at])
            self.buffer, self.state = buf[at + len(MESSAGE):], "body"
            return True
        at, marker = _first(buf, ENDS)
        if at >= 0:
            self._body(out, buf[:at])
            self._close(out)
            self.buffer, self.state = buf[at + len(marker):], "text"
            return True
        keep = 0 if final else _held(buf, ENDS)
        self._body(out, buf[:len(buf) - keep])
        self.buffer = buf[len(buf) - keep:]
        return False

    def _open(self, out: ParsedDelta, header: str) -> None:
        """A message begins: what its body is, from its header."""
        channel = header.split(CHANNEL, 1)[1] if CHANNEL in header else ""
        channel = re.split(r"[\s<]", channel.strip(), maxsplit=1)[0]
        recipient = RECIPIENT.search(header)
        self.opened = False
        if recipient is not None:
            name = recipient.group(1)
            if not (self.parse_calls and name.startswith(FUNCTIONS)):
                self.kind = "skip"
                return
            delta = self.new_call(name[len(FUNCTIONS):])
            out.tool_calls.append(delta)
            self.kind, self.index, self.sent = "call", delta.index, 0
        else:
            self.kind = "reasoning" if channel == "analysis" else "content"

    def _body(self, out: ParsedDelta, text: str) -> None:
        if not text or self.kind == "skip":
            return
        if self.kind == "call":
            out.tool_calls.append(ToolCallDelta(index=self.index, arguments=text))
            self.sent += len(text)
            return
        if not self.opened and self.wrote[self.kind]:
            text = " " + text  # OVMS joins messages of one kind with a space
        self.opened = self.wrote[self.kind] = True
        if self.kind == "reasoning":
            out.reasoning += text
        else:
            out.content += text

    def _close(self, out: ParsedDelta) -> None:
        if self.kind == "call" and not self.sent:
            out.tool_calls.append(ToolCallDelta(index=self.index, arguments="{}"))
        self.kind = ""
