"""The built-in model, as `make` prepares it, loads in openvino-genai and answers coherently."""

from __future__ import annotations

import json
from pathlib import Path

import openvino_genai as ov_genai

from tests.toolchain.coherence import assert_coherent


def test_default_model_is_int8_with_tokenizers(default_model_dir: Path) -> None:
    record = json.loads((default_model_dir / "ovserve_model.json").read_text())
    assert record["weight_format"] == "int8"
    assert record["source"] == "builtin:smollm2-135m-instruct"
    for name in ("openvino_tokenizer.xml", "openvino_detokenizer.xml", "openvino_model.xml"):
        assert (default_model_dir / name).is_file(), name


def test_answers_relativity_question(default_model_dir: Path) -> None:
    pipe = ov_genai.LLMPipeline(str(default_model_dir), "CPU")
    config = ov_genai.GenerationConfig(max_new_tokens=96, do_sample=False)
    answer = pipe.generate("What is the theory of relativity?", config)
    assert isinstance(answer, str)
    assert "relativ" in answer.lower(), answer
    assert "<|im" not in answer  # the chat template was applied and eos stopped nothing early
    assert_coherent(answer)
