"""Structured-output constraints openvino-genai could not compile are refused before they
reach the engine (there they would fail the whole batch's step and leave the pipeline
unusable)."""

from __future__ import annotations

import json

import pytest

from ovserve.engine import grammar
from ovserve.errors import InvalidInput

GOOD_SCHEMA = {"type": "object", "$defs": {"City": {"type": "string", "pattern": "^[A-Z]"}},
               "properties": {"city": {"$ref": "#/$defs/City"},
                              "n": {"type": ["integer", "null"]},
                              "tag": {"enum": [{"$ref": "not a schema, a value"}]}}}


@pytest.mark.parametrize("kind, value", [
    ("regex", "[0-9]{3}"), ("regex", "(a|b)+c?"), ("json_schema", json.dumps(GOOD_SCHEMA)),
    ("structural_tags_config", json.dumps({"type": "structural_tag", "format": {
        "type": "tag", "begin": "<a>", "content": {"type": "json_schema",
                                                   "json_schema": GOOD_SCHEMA}, "end": "</a>"}})),
])
def test_what_compiles_passes(kind: str, value: str) -> None:
    grammar.check(kind, value)


@pytest.mark.parametrize("kind, value, message", [
    ("regex", "(((", "not a regular expression"),
    ("regex", "a(?=b)", "lookaround"),
    ("regex", "(a)\\1", "back-references"),
    ("json_schema", '{"properties": {"x": {"$ref": "#/$defs/nope"}}}', "does not point"),
    ("json_schema", '{"$ref": "http://example.com/s.json"}', "does not point"),
    ("json_schema", '{"type": "strange"}', "not a JSON schema type"),
    ("json_schema", '{"properties": {"x": {"type": "string", "pattern": "(("}}}',
     "properties.x.pattern: not a regular expression"),
    ("json_schema", "[1, 2]", "a JSON schema is an object"),
    ("structural_tags_config", json.dumps({"type": "structural_tag", "format": {
        "type": "tag", "begin": "<a>", "end": "</a>", "content": {
            "type": "json_schema", "json_schema": {"$ref": "#/nope"}}}}), "does not point"),
])
def test_what_would_not_compile_is_invalid_input(kind: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(".", r"\.")):
        grammar.check(kind, value)
