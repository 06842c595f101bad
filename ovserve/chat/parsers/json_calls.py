"""Tool calls written as JSON objects ``{"name": ..., "arguments": {...}}`` after a marker
(Hermes' ``<tool_call>``, Mistral's ``[TOOL_CALLS]``, Phi-4's ``functools[``, Llama 3's
``<|python_tag|>`` or a bare object), parsed as they stream: a call's name as soon as it is
complete, then its arguments' JSON text in the pieces it arrives in.

openvino-genai's ``Llama3JsonToolParser`` parses whole texts only; one incremental parser for
both streamed and whole answers is what makes them agree, so the formats are written here.
"""

from __future__ import annotations

import json
from typing import Any

from ovserve.chat.parsers.base import BufferedToolParser, ParsedDelta, held_prefix
from ovserve.protocol.chat import Tool, ToolCallDelta

WHITESPACE = " \t\r\n"


def string_end(text: str, start: int) -> int | None:
    """The index after the JSON string opening at ``text[start]``, None if it is not closed."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    return None


def value_end(text: str, start: int) -> int | None:
    """The index after the JSON value starting at ``text[start]``, None if not complete."""
    first = text[start]
    if first == '"':
        return string_end(text, start)
    if first in "{[":
        depth, i = 0, start
        while i < len(text):
            char = text[i]
            if char == '"':
                end = string_end(text, i)
                if end is None:
                    return None
                i = end
                continue
            if char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return None
    i = start
    while i < len(text) and text[i] not in ",}]" + WHITESPACE:
        i += 1
    return i if i < len(text) else None


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i


MALFORMED = -1


class ValueScanner:
    """Where a JSON object or array that starts at ``start`` ends, reading only the text
    added since the last call (a long call's arguments are scanned once, not per piece)."""

    def __init__(self, start: int) -> None:
        self.i = start
        self.depth = 0
        self.in_string = self.escape = False

    def advance(self, text: str) -> int | None:
        i, depth, in_string, escape = self.i, self.depth, self.in_string, self.escape
        end = None
        while i < len(text):
            char = text[i]
            i += 1
            if in_string:
                if escape:
                    escape = False
                elif char == "\\":
                    escape = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        self.i, self.depth, self.in_string, self.escape = i, depth, in_string, escape
        return end


def members(obj: str) -> tuple[dict[str, tuple[int, int | None]], int | None]:
    """The top-level members of the JSON object ``obj`` begins (``obj[0] == "{"``) so far:
    key -> (start, end or None) of its raw value; and the index after the object (None: not
    complete yet, ``MALFORMED``: not JSON)."""
    spans: dict[str, tuple[int, int | None]] = {}
    i = 1
    while True:
        i = _skip(obj, i)
        if i >= len(obj):
            return spans, None
        if obj[i] == "}":
            return spans, i + 1
        if obj[i] == ",":
            i += 1
            continue
        if obj[i] != '"':
            return spans, MALFORMED
        key_end = string_end(obj, i)
        if key_end is None:
            return spans, None
        try:
            key = str(json.loads(obj[i:key_end]))
        except ValueError:
            return spans, MALFORMED
        i = _skip(obj, key_end)
        if i >= len(obj):
            return spans, None
        if obj[i] != ":":
            return spans, MALFORMED
        i = _skip(obj, i + 1)
        if i >= len(obj):
            return spans, None
        end = value_end(obj, i)
        spans[key] = (i, end)
        if end is None:
            return spans, None
        i = end


class _ObjectCall:
    """One call being read from its JSON object."""

    def __init__(self, parser: JsonCallsParser) -> None:
        self.parser = parser
        self.delta: ToolCallDelta | None = None  # its first piece, once its name is known
        self.sent = 0  # characters of its arguments' raw text sent
        #: its arguments (an object or array) being read: where they start, their scanner
        self.scanning: tuple[int, ValueScanner] | None = None

    def stream(self, obj: str) -> tuple[list[ToolCallDelta], bool]:
        """While its arguments are being read: their new text, and whether they ended (then
        the object's members are read again, once)."""
        assert self.scanning is not None and self.delta is not None
        start, scanner = self.scanning
        end = scanner.advance(obj)
        raw = obj[start:end if end is not None else len(obj)]
        out = []
        if len(raw) > self.sent:
            out.append(ToolCallDelta(index=self.delta.index, arguments=raw[self.sent:]))
            self.sent = len(raw)
        if end is not None:
            self.scanning = None
        return out, end is not None

    def update(self, obj: str, spans: dict[str, tuple[int, int | None]], complete: bool
               ) -> list[ToolCallDelta]:
        out: list[ToolCallDelta] = []
        if self.delta is None:
            name_span = spans.get("name")
            if name_span is None or name_span[1] is None:
                return out
            try:
                name = json.loads(obj[name_span[0]:name_span[1]])
            except ValueError:
                return out
            if not isinstance(name, str):
                return out
            self.delta = self.parser.new_call(name)
            out.append(self.delta)
        args = next((spans[k] for k in self.parser.argument_keys if k in spans), None)
        index = self.delta.index
        if args is None:
            if complete and not self.sent:
                self.sent = 2
                out.append(ToolCallDelta(index=index, arguments="{}"))
            return out
        start, end = args
        raw = obj[start:end if end is not None else len(obj)]
        if raw.startswith('"'):  # arguments given as a JSON text in a string
            if end is not None and not self.sent:
                try:
                    text = json.loads(raw)
                except ValueError:
                    text = raw
                self.sent = len(raw)
                out.append(ToolCallDelta(index=index, arguments=str(text)))
            return out
        if len(raw) > self.sent:
            out.append(ToolCallDelta(index=index, arguments=raw[self.sent:]))
            self.sent = len(raw)
        if end is None and raw[:1] in ("{", "["):  # read on from here as text arrives
            scanner = ValueScanner(start)
            scanner.advance(obj)
            self.scanning = (start, scanner)
        return out


class JsonCallsParser(BufferedToolParser):
    """Content, then regions opened by ``opening`` (and closed by ``closing``, or by other
    text when ``closing`` is empty) holding JSON call objects apart by ``separators``."""

    opening: str = ""
    closing: str = ""
    separators: str = ",;"
    #: the output may open a region by starting with one of these (no marker): Llama 3's bare
    #: JSON, Mistral's array when its [TOOL_CALLS] token was skipped as special
    bare_start: str = ""
    argument_keys: tuple[str, ...] = ("arguments", "parameters")

    def __init__(self, tools: tuple[Tool, ...] = ()) -> None:
        super().__init__(tools)  # states: text | region | object
        self.started = False  # any non-whitespace output seen
        self.marked = False  # the region was opened by the call marker (not a bare start)
        self.call: _ObjectCall | None = None

    def _end(self, out: ParsedDelta) -> None:
        if self.state == "object" and self.call is not None and self.call.delta is None:
            if not self.marked:  # a bare object that never became a call: it was text
                out.content += self.buffer
            # after a call marker, cut before its name (max_tokens): not content either
        elif self.state == "text":
            out.content += self.buffer

    def _step(self, out: ParsedDelta, final: bool) -> bool:
        """Consume what can be decided of the buffer; True if the state changed."""
        buf = self.buffer
        if self.state == "text":
            if not self.started and self.bare_start:
                stripped = buf.lstrip(WHITESPACE)
                marker = bool(self.opening) and self.opening.startswith(
                    stripped[:len(self.opening)])
                if stripped and marker and not final and len(stripped) < len(self.opening):
                    return False  # the marker or a bare call: the next piece says
                if stripped and stripped[0] in self.bare_start and not marker:
                    self.started = True
                    self.marked = False
                    self.buffer = stripped
                    self.state = "region"
                    return True
            at = buf.find(self.opening) if self.opening else -1
            if at >= 0:
                out.content += buf[:at]
                self.buffer = buf[at + len(self.opening):]
                self.started = self.marked = True
                self.state = "region"
                return True
            keep = 0 if final or not self.opening else held_prefix(buf, self.opening)
            if not self.started and self.bare_start and not buf.strip(WHITESPACE):
                return False  # only whitespace yet: a bare call may still come
            emitted = buf[:len(buf) - keep]
            if emitted.strip(WHITESPACE):
                self.started = True
            out.content += emitted
            self.buffer = buf[len(buf) - keep:]
            return False
        if self.state == "region":
            i = 0
            while i < len(buf) and (buf[i] in WHITESPACE or buf[i] in self.separators
                                    or buf[i] == "["):
                i += 1
            buf = self.buffer = buf[i:]
            if not buf:
                return False
            if buf[0] == "{":
                self.state = "object"
                self.call = _ObjectCall(self)
                return True
            if self.closing:
                if buf.startswith(self.closing):
                    self.buffer = buf[len(self.closing):]
                    self.state = "text"
                    return True
                if self.closing.startswith(buf):
                    if not final:
                        return False  # the closing marker may be arriving
                    self.buffer = ""  # cut inside the closing marker (max_tokens): not content
                    self.state = "text"
                    return True
            self.state = "text"  # anything else ends the region
            return True
        # an object
        assert self.call is not None
        if self.call.scanning is not None:  # its arguments: only the new text is read
            pieces, ended = self.call.stream(buf)
            out.tool_calls += pieces
            if not ended:
                return False
        spans, end = members(buf)
        if end == MALFORMED:
            if self.call.delta is None:
                out.content += buf
                self.buffer = ""
            else:
                self.buffer = ""
            self.state = "text"
            return True
        complete = end is not None
        out.tool_calls += self.call.update(buf[:end] if end else buf, spans, complete)
        if complete:
            assert end is not None
            if self.call.delta is None:
                out.content += buf[:end]
            self.buffer = buf[end:]
            self.state = "region"
            return True
        return False


def json_call_tag(opening: str, name: str, schema: dict[str, Any], closing: str,
                  argument_key: str = "arguments") -> dict[str, Any]:
    """A structural tag for ``opening{"name": NAME, "<argument_key>": <schema>}closing``."""
    return {"type": "tag",
            "begin": f'{opening}{{"name": {json.dumps(name)}, "{argument_key}": ',
            "content": {"type": "json_schema", "json_schema": schema},
            "end": "}" + closing}
