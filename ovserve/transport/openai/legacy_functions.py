"""OpenAI's legacy function calling on chat completions (``functions``, ``function_call``,
``role: "function"`` messages), read as today's tools and answered in the legacy shape: the
message's ``function_call`` (one call), ``delta.function_call`` pieces, finish reason
``function_call``, as OpenAI answers a request that used them.

A request body is rewritten before validation (``upgrade``): ``functions`` become ``tools``,
``function_call`` ``tool_choice`` (one call at most), an assistant message's
``function_call`` a tool call and a ``function`` message that call's ``tool`` answer.
"""

from __future__ import annotations

from typing import Any

from ovserve.errors import InvalidInput

#: the key ``upgrade`` marks a rewritten body with (read once by the request model)
MARK = "__legacy_functions__"


def _call_id(n: int) -> str:
    return f"call_legacy_{n}"


def _functions(functions: Any) -> list[dict[str, Any]]:
    if not isinstance(functions, list) or not functions:
        raise InvalidInput("functions: a non-empty list of function definitions is required",
                           "functions")
    tools = []
    for i, function in enumerate(functions):
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidInput(f"functions.{i}: an object with a name is required", "functions")
        tools.append({"type": "function", "function": function})
    return tools


def _choice(choice: Any) -> Any:
    if choice in (None, "none", "auto"):
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("name"), str) and len(choice) == 1:
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidInput('function_call: "none", "auto" or {"name": ...} is required',
                       "function_call")


def _messages(messages: Any) -> Any:
    """Assistant ``function_call`` -> ``tool_calls``; ``function`` role -> ``tool``."""
    if not isinstance(messages, list):
        return messages
    out, calls = [], 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            out.append(message)
            continue
        message = dict(message)
        call = message.pop("function_call", None)
        if call is not None and message.get("role") == "assistant":
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise InvalidInput(f"messages.{i}.function_call: an object with a name is "
                                   "required", "messages")
            calls += 1
            message["tool_calls"] = [{"id": _call_id(calls), "type": "function", "function": {
                "name": call["name"], "arguments": call.get("arguments", "{}")}}]
        elif call is not None:
            raise InvalidInput(f"messages.{i}.function_call: only an assistant message makes "
                               "calls", "messages")
        if message.get("role") == "function":
            message["role"] = "tool"
            message["tool_call_id"] = _call_id(calls)  # answers the call before it
        out.append(message)
    return out


def upgrade(body: Any) -> Any:
    """A chat request body with legacy function fields rewritten (others as they are)."""
    if not isinstance(body, dict):
        return body
    messages = body.get("messages")
    legacy_history = isinstance(messages, list) and any(
        isinstance(m, dict) and (m.get("role") == "function" or "function_call" in m)
        for m in messages)
    if "functions" not in body and body.get("function_call") is None and not legacy_history:
        return body
    body = dict(body)
    body["messages"] = _messages(messages)
    functions = body.pop("functions", None)
    choice = body.pop("function_call", None)
    if functions is None:
        if choice not in (None, "none", "auto"):
            raise InvalidInput("function_call: names a function, but functions is not given",
                               "function_call")
        return body
    if body.get("tools") is not None or body.get("tool_choice") is not None:
        raise InvalidInput("functions: send tools or the legacy functions, not both",
                           "functions")
    body["tools"] = _functions(functions)
    if choice is not None:
        body["tool_choice"] = _choice(choice)
    body["parallel_tool_calls"] = False  # a legacy answer holds one call
    body[MARK] = True
    return body
