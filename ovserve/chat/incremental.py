"""One choice's output, parsed as it streams into content, reasoning and tool calls.

The same parser reads a streamed answer piece by piece and a whole answer (fed its pieces as
they come, then ``finish``), so both carry the same content, reasoning and calls by
construction. Whitespace at the end of content is held back until more content follows; it is
dropped when the answer made tool calls (the newlines around a model's call markers).
"""

from __future__ import annotations

from ovserve.chat.parsers import ParsedDelta, ThinkParser, ToolParser

WHITESPACE = " \t\r\n"


class ChatOutputParser:
    def __init__(self, reasoning: ThinkParser | None = None,
                 tools: ToolParser | None = None) -> None:
        self.reasoning = reasoning
        self.tools = tools
        self.pending = ""  # content whitespace held back

    @property
    def called(self) -> bool:
        """Whether the output made a tool call so far."""
        return self.tools is not None and self.tools.calls > 0

    def feed(self, text: str) -> ParsedDelta:
        out = ParsedDelta()
        if self.reasoning is not None:
            out.reasoning, text = self.reasoning.feed(text)
        self._content(out, text, self.tools.feed(text) if self.tools and text else None)
        return out

    def finish(self) -> ParsedDelta:
        out = ParsedDelta()
        text = ""
        if self.reasoning is not None:
            out.reasoning, text = self.reasoning.finish()
        if self.tools is not None:
            parsed = self.tools.feed(text) if text else ParsedDelta()
            parsed.add(self.tools.finish())
            self._content(out, "", parsed)
        else:
            self._content(out, text, None)
        if not self.called:
            out.content += self.pending
        self.pending = ""
        return out

    def _content(self, out: ParsedDelta, text: str, parsed: ParsedDelta | None) -> None:
        if parsed is not None:
            text = parsed.content
            out.reasoning += parsed.reasoning  # a parser of a whole format (harmony)
            out.tool_calls += parsed.tool_calls
        if not text:
            return
        text = self.pending + text
        kept = len(text) - len(text.rstrip(WHITESPACE))
        self.pending = text[len(text) - kept:]
        out.content += text[:len(text) - kept]
