"""The built-in model, as `make` prepares it, loads in openvino-genai, answers coherently and
predicts plain English."""

from __future__ import annotations

import json
from pathlib import Path

import openvino_genai as ov_genai

from tests.conftest import plugin_config
from tests.toolchain.coherence import PARAGRAPH, assert_coherent, mean_nll

ANSWER_TOKENS = 96


def test_default_model_is_int8_with_tokenizers(default_model_dir: Path) -> None:
    record = json.loads((default_model_dir / "ovserve_model.json").read_text())
    assert record["weight_format"] == "int8"
    assert record["source"] == "builtin:smollm2-135m-instruct"
    for name in ("openvino_tokenizer.xml", "openvino_detokenizer.xml", "openvino_model.xml"):
        assert (default_model_dir / name).is_file(), name


def test_answers_relativity_question(default_model_dir: Path) -> None:
    """Greedy, with the length forced (EOS cannot end it early), the answer is language rather
    than a loop or noise, and no chat-template token leaks into the text. What it says is not
    checked: that is the CPU's near-ties' to decide."""
    pipe = ov_genai.LLMPipeline(str(default_model_dir), "CPU", **plugin_config())
    config = ov_genai.GenerationConfig(
        max_new_tokens=ANSWER_TOKENS, min_new_tokens=ANSWER_TOKENS, do_sample=False)
    result = pipe.generate(["What is the theory of relativity?"], config)
    assert result.perf_metrics.get_num_generated_tokens() == ANSWER_TOKENS
    (answer,) = result.texts
    assert "<|im" not in answer  # the chat template was applied, its tokens are not text
    assert_coherent(answer)


def test_predicts_english_far_better_than_reversed_words(default_model_dir: Path) -> None:
    """The quality gate that holds on any CPU: teacher-forced, a plain English paragraph costs
    the int8 model few nats per token, far fewer than the same words in reverse order, and the
    CPU's default kernels and precision (bf16 on some Xeons) cost about what f32 does."""
    properties = plugin_config()
    in_order = mean_nll(default_model_dir, PARAGRAPH, properties)
    reversed_words = " ".join(reversed(PARAGRAPH.split()))
    assert in_order < 3.5, in_order
    assert mean_nll(default_model_dir, reversed_words, properties) > in_order + 2.0
    f32 = mean_nll(default_model_dir, PARAGRAPH,
                   {**properties, "INFERENCE_PRECISION_HINT": "f32"})
    assert abs(in_order - f32) < 0.15, (in_order, f32)
