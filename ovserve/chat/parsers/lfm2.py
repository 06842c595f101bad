"""LFM2 / LFM2.5 tool calls (OVMS's ``lfm2``): a Python list of calls between two special
tokens::

    <|tool_call_start|>[get_weather(city="Paris", days=3), get_time()]<|tool_call_end|>

A region's calls come out when it closes (read with Python's own parser, keyword arguments as
literals; ``true``/``false``/``null`` as JSON writes them are taken too).
"""

from __future__ import annotations

import ast
import json
from typing import Any

from ovserve.chat.parsers.base import BufferedToolParser, ParsedDelta
from ovserve.protocol.chat import ToolCallDelta

OPEN, CLOSE = "<|tool_call_start|>", "<|tool_call_end|>"
JSON_NAMES = {"true": True, "false": False, "null": None}


def _value(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id in JSON_NAMES:
        return JSON_NAMES[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_value(k) if k is not None else "": _value(v)
                for k, v in zip(node.keys, node.values, strict=True)}
    return ast.literal_eval(node)


def pythonic_calls(text: str) -> list[tuple[str, dict[str, Any]]] | None:
    """``[f(a=1), g()]`` (or one bare call) as (name, arguments); None: not calls."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None
    nodes = tree.elts if isinstance(tree, ast.List) else [tree]
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return None
        name = ast.unparse(node.func)
        try:
            arguments = {kw.arg: _value(kw.value) for kw in node.keywords if kw.arg}
        except (ValueError, TypeError, SyntaxError):
            return None
        calls.append((name, arguments))
    return calls


class Lfm2ToolParser(BufferedToolParser):
    name = "lfm2"
    special_tokens = True
    trigger = OPEN

    def _end(self, out: ParsedDelta) -> None:
        if self.state == "text":
            out.content += self.buffer
        elif self.state == "region":  # cut short: the calls written so far, if complete
            self._calls(out, self.buffer)

    def _step(self, out: ParsedDelta, final: bool) -> bool:
        if self.state == "text":
            return self._text_until(out, OPEN, final, "region")
        at = self.buffer.find(CLOSE)
        if at < 0:
            return False
        self._calls(out, self.buffer[:at])
        self.buffer, self.state = self.buffer[at + len(CLOSE):], "text"
        return True

    def _calls(self, out: ParsedDelta, region: str) -> None:
        for name, arguments in pythonic_calls(region) or []:
            delta = self.new_call(name)
            out.tool_calls += [delta, ToolCallDelta(index=delta.index,
                                                    arguments=json.dumps(arguments))]
