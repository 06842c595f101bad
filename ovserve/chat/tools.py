"""Tools as requests give them: checked (a malformed one is a 400 naming its field), and the
structured-output constraint that makes a model's calls well formed (OVMS's tool guided
generation: openvino-genai's structural tags, as OVMS's GenerationConfigBuilders write them)."""

from __future__ import annotations

import json
from typing import Any

from ovserve.chat.parsers import ToolParser
from ovserve.engine import grammar
from ovserve.errors import InvalidInput
from ovserve.protocol.chat import ChatSettings, Tool

EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def check_parameters(schema: Any, where: str) -> dict[str, Any]:
    """A tool's ``parameters``: a JSON schema of an object (OpenAI's rule), else a 400
    naming the field by its path (``tools.0.function.parameters``)."""
    field = where
    if schema is None:
        return dict(EMPTY_PARAMETERS)
    if not isinstance(schema, dict):
        raise InvalidInput(f"{where}: a JSON schema object is required", field)
    kind = schema.get("type", "object")
    if kind != "object":
        raise InvalidInput(f"{where}.type: a tool's parameters are an object's schema "
                           f"(type \"object\"), not {kind!r}", field)
    properties = schema.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(v, dict | bool)
                                                   for v in properties.values()):
        raise InvalidInput(f"{where}.properties: an object mapping names to schemas is "
                           "required", field)
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise InvalidInput(f"{where}.required: a list of property names is required", field)
    try:
        json.dumps(schema)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{where}: not JSON ({exc})", field) from exc
    try:  # what structured output could not compile (a call of it may be forced)
        grammar.check_schema(schema, where)
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field) from exc
    return schema


def check_choice(tools: tuple[Tool, ...], choice: str, named: bool, field: str) -> None:
    """``tool_choice`` must fit ``tools``: a named function must be one of them."""
    if choice in ("required",) and not tools:
        raise InvalidInput(f"{field}: \"required\" needs tools", field)
    if named and choice not in {t.name for t in tools}:
        names = ", ".join(t.name for t in tools) or "none"
        raise InvalidInput(f"{field}: function {choice!r} is not among the tools ({names})",
                           field)


def guidance(settings: ChatSettings, parser: type[ToolParser], guided: bool) -> str | None:
    """The structural tag (as JSON text for ``StructuredOutputConfig.structural_tags_config``)
    that constrains tool calls: ``required`` or a named function force one or more calls and
    nothing else; ``guided`` (the graph's ``enable_tool_guided_generation``) constrains calls
    the model chooses to make; None: no constraint."""
    if not settings.calls_tools or not (settings.forced or guided):
        return None
    tools = [t for t in settings.tools
             if not settings.named_tool or t.name == settings.tool_choice]
    tags = [parser.tag(tool) for tool in tools]
    one = settings.named_tool or not settings.parallel_tool_calls
    if settings.forced:
        form: dict[str, Any] = {"type": "tags_with_separator", "tags": tags,
                                "separator": parser.separator, "at_least_one": True,
                                "stop_after_first": one}
    else:
        form = {"type": "triggered_tags", "triggers": [parser.trigger], "tags": tags,
                "at_least_one": False, "stop_after_first": one}
    return json.dumps({"type": "structural_tag", "format": form})
