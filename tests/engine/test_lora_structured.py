"""Structured output on LoRA adapters: the grammar masks within the request's slot of the
widened vocabulary, so the adapter keeps running (its tokens stay in its slot) and the text
follows the grammar."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from ovserve.engine.base import EngineConfig, LoraOptions, SamplingParams
from ovserve.engine.client import OpenVINOEngine
from ovserve.protocol.generation import StructuredKind
from tests.conftest import plugin_config
from tests.engine.lora_files import write_adapter

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0,
                                                 "maximum": 999}},
          "required": ["n"], "additionalProperties": False}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
           ) -> Iterator[OpenVINOEngine]:
    root = tmp_path_factory.mktemp("loras")
    write_adapter(root / "alpha", seed=0, spread=0.08)
    # one sequence at a time, no prefix cache: two runs of one request compare exactly
    engine = OpenVINOEngine(EngineConfig(
        models_path=default_model_dir, lora=LoraOptions(dirs=(root,)), deterministic=True,
        plugin_config=plugin_config({"INFERENCE_PRECISION_HINT": "f32"})))
    yield engine
    engine.close()


def run(engine: OpenVINOEngine, adapter: str | None,
        structured: tuple[StructuredKind, str] | None, ignore_eos: bool = True) -> str:
    params = SamplingParams(max_tokens=24, temperature=0, ignore_eos=ignore_eos,
                            apply_chat_template=False, structured=structured)
    prepared = engine.prepare("The theory of relativity", params, adapter=adapter)
    return "".join(delta.text for delta in engine.submit(prepared).deltas())


def test_a_grammar_that_allows_everything_leaves_the_adapter_running(
        engine: OpenVINOEngine) -> None:
    """Were the grammar's mask built for the base vocabulary only, every token of the
    adapter's slot would be masked and the request would fall back to the base model's."""
    free = run(engine, "alpha", None)
    assert free != run(engine, None, None)  # the adapter changes the text
    assert run(engine, "alpha", ("regex", r"[\s\S]*")) == free


def test_the_grammar_holds_and_ends_the_text_on_an_adapter(engine: OpenVINOEngine) -> None:
    """A regex (xgrammar's JSON grammar lets a small model loop on whitespace) the text must
    match whole: once it is complete only end-of-sequence is allowed."""
    text = run(engine, "alpha", ("regex", r'\{"n": [1-9][0-9]{0,2}\}'), ignore_eos=False)
    jsonschema.validate(json.loads(text), SCHEMA)
