"""The Responses API's tools that are not plain functions, as the chat layer's function tools
and back (what Codex-style clients send):

- ``custom`` (free-form input, OpenAI's ``format`` text or grammar): a function with one string
  parameter ``input``; its calls come back as ``custom_tool_call`` items with that ``input``.
  A ``regex`` grammar constrains the string (a JSON schema ``pattern``, checked like any
  other); a ``lark`` grammar is shown to the model in the tool's description but does not
  constrain it (openvino-genai's grammars are not Lark).
- ``local_shell``: a function ``local_shell`` taking the ``exec`` action's fields; its calls
  come back as ``local_shell_call`` items.

Other hosted tools (web search, file search, computer, MCP, ...) run on OpenAI's side and are
a 400 naming the tool.
"""

from __future__ import annotations

import json
from typing import Any

from ovserve.errors import InvalidInput

LOCAL_SHELL = "local_shell"
LOCAL_SHELL_PARAMETERS: dict[str, Any] = {
    "type": "object", "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "working_directory": {"type": "string"},
        "timeout_ms": {"type": "integer", "minimum": 1},
        "env": {"type": "object", "additionalProperties": {"type": "string"}}},
    "required": ["command"], "additionalProperties": False}
LOCAL_SHELL_DESCRIPTION = ("Run a command on the user's machine: command is the program and "
                           "its arguments (e.g. [\"ls\", \"-la\"]).")
#: what each kind of tool is as a chat function tool, and the item its calls become
KINDS = ("function", "custom", LOCAL_SHELL)


def _custom_parameters(tool: dict[str, Any], where: str) -> tuple[dict[str, Any], str]:
    """A custom tool's one string parameter (constrained by a regex grammar), and the
    description's note on a Lark grammar."""
    fmt = tool.get("format") or {"type": "text"}
    text: dict[str, Any] = {"type": "string"}
    note = ""
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "grammar"):
        raise InvalidInput(f"{where}.format.type: \"text\" or \"grammar\" is required", "tools")
    if fmt["type"] == "grammar":
        syntax, definition = fmt.get("syntax"), fmt.get("definition")
        if not isinstance(definition, str) or not definition:
            raise InvalidInput(f"{where}.format.definition: a grammar is required", "tools")
        if syntax == "regex":
            text["pattern"] = definition
        elif syntax == "lark":
            note = f"\n\nThe input follows this Lark grammar:\n{definition}"
        else:
            raise InvalidInput(f"{where}.format.syntax: \"lark\" or \"regex\" is required",
                               "tools")
    return ({"type": "object", "properties": {"input": text}, "required": ["input"],
             "additionalProperties": False}, note)


def chat_tool(tool: dict[str, Any], i: int) -> tuple[dict[str, Any], str, str]:
    """A Responses tool as a chat function tool: (tool, its name, its kind)."""
    where = f"tools.{i}"
    kind = tool.get("type")
    if kind == "function":
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict")
                    if k in tool}
    elif kind == "custom":
        if not isinstance(tool.get("name"), str):
            raise InvalidInput(f"{where}.name: a string is required", "tools")
        parameters, note = _custom_parameters(tool, where)
        description = tool.get("description") or ""
        if not isinstance(description, str):
            raise InvalidInput(f"{where}.description: a string is required", "tools")
        function = {"name": tool["name"], "parameters": parameters,
                    "description": (description + note).strip() or None}
    elif kind == LOCAL_SHELL:
        function = {"name": LOCAL_SHELL, "description": LOCAL_SHELL_DESCRIPTION,
                    "parameters": LOCAL_SHELL_PARAMETERS}
    else:
        raise InvalidInput(f"{where}.type: {kind!r} tools are not supported (function, custom "
                           "and local_shell are; hosted tools run on OpenAI's side)", "tools")
    return {"type": "function", "function": function}, str(function.get("name")), str(kind)


def kinds_of(tools: list[dict[str, Any]] | None) -> dict[str, str]:
    """Tool name -> kind, for the items calls become."""
    return {name: kind for name, kind in (chat_tool(t, i)[1:] for i, t in enumerate(tools or []))}


def custom_input(arguments: str) -> str:
    """A custom tool call's ``input`` from its arguments' JSON text (the text itself when
    the model wrote something else)."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get("input"), str):
        return str(parsed["input"])
    return arguments


def shell_action(arguments: str) -> dict[str, Any]:
    """A local_shell call's ``exec`` action from its arguments' JSON text."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = {}
    parsed = parsed if isinstance(parsed, dict) else {}
    command = parsed.get("command")
    action: dict[str, Any] = {
        "type": "exec",
        "command": [str(c) for c in command] if isinstance(command, list) else [],
        "env": {str(k): str(v) for k, v in parsed["env"].items()}
        if isinstance(parsed.get("env"), dict) else {}}
    for key in ("working_directory", "timeout_ms"):
        if key in parsed:
            action[key] = parsed[key]
    return action


def call_arguments(item: dict[str, Any], kind: str, where: str) -> tuple[str, str]:
    """An input item's call (custom_tool_call, local_shell_call) as (name, arguments)."""
    if kind == "custom_tool_call":
        name, text = item.get("name"), item.get("input")
        if not isinstance(name, str) or not isinstance(text, str):
            raise InvalidInput(f"{where}: name and input strings are required", "input")
        return name, json.dumps({"input": text})
    action = item.get("action")
    if not isinstance(action, dict) or not isinstance(action.get("command"), list):
        raise InvalidInput(f"{where}.action.command: a list of strings is required", "input")
    return LOCAL_SHELL, json.dumps({k: v for k, v in action.items() if k != "type"})
