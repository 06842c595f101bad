"""Checks of structured-output constraints before they reach the engine.

openvino-genai compiles a request's grammar inside a generation step; a grammar it cannot
compile fails that step for every request in the batch, and the pipeline is left unusable
(measured on 2026.4.1: "... already in scheduling phase" on every later step). Its check
(``StructuredOutputConfig::validate(Tokenizer&)``) is not in its Python API, so what a request
brings is checked here first, for what xgrammar refuses: regexes that do not parse or use
lookaround or back-references, JSON schemas with ``$ref``s that do not resolve in the schema,
unknown types, or a ``pattern`` that is not such a regex.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ovserve.errors import InvalidInput

TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
#: regex syntax xgrammar's regex converter does not take (Python's ``re`` does)
UNSUPPORTED_REGEX = re.compile(r"\(\?(?:[=!]|<[=!])|\\[1-9]|\(\?P[<=]")


def check_regex(pattern: str, where: str = "regex") -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise InvalidInput(f"{where}: not a regular expression ({exc})") from exc
    if UNSUPPORTED_REGEX.search(pattern):
        raise InvalidInput(f"{where}: lookaround, back-references and named groups are not "
                           "supported in structured output")


def _resolve(root: Any, ref: str) -> bool:
    if not ref.startswith("#"):
        return False
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def check_schema(schema: Any, where: str = "schema") -> None:
    """A JSON schema xgrammar can compile (as far as can be told without compiling it)."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise InvalidInput(f"{where}: not JSON ({exc})") from exc
    if not isinstance(schema, dict | bool):
        raise InvalidInput(f"{where}: a JSON schema is an object")

    def walk(node: Any, path: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}.{i}")
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if ref is not None and (not isinstance(ref, str) or not _resolve(schema, ref)):
            raise InvalidInput(f"{path}.$ref: {ref!r} does not point into the schema")
        kind = node.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
        for k in kinds:
            if k not in TYPES:
                raise InvalidInput(f"{path}.type: {k!r} is not a JSON schema type")
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            check_regex(pattern, f"{path}.pattern")
        for key, value in node.items():
            if key not in ("enum", "const", "default", "examples"):  # values, not schemas
                walk(value, f"{path}.{key}")

    walk(schema, where)


def check_structural_tag(text: str, where: str = "structural tag") -> None:
    """Every JSON schema and regex inside a structural tag (XGrammar's format)."""

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("type") in ("json_schema", "qwen_xml_parameter") and \
                    "json_schema" in node:
                check_schema(node["json_schema"], where)
            elif node.get("type") == "regex" and isinstance(node.get("pattern"), str):
                check_regex(node["pattern"], where)
            else:
                for value in node.values():
                    walk(value)

    walk(json.loads(text))


def check(kind: str, value: str) -> None:
    """A ``SamplingParams.structured`` constraint; InvalidInput when it would not compile."""
    if kind == "regex":
        check_regex(value)
    elif kind == "json_schema":
        check_schema(value)
    elif kind == "structural_tags_config":
        check_structural_tag(value)
