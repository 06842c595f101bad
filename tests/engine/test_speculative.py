"""Speculative decoding, a dynamic KV cache and cache eviction on the real engine (OVMS 2026's
draft_* fields, cache_size 0, cache_eviction_config). The draft model is SmolLM2-135M itself,
the only model here: every draft token is then accepted, which still runs the draft/verify
path. Counts, not text, decide."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ovserve.engine import EngineConfig, SamplingParams
from ovserve.engine.base import CacheEviction, DraftModel, LoraOptions, SparseAttention
from ovserve.engine.client import SPECULATIVE_NUM_ASSISTANT_TOKENS, OpenVINOEngine
from ovserve.errors import EngineError, InvalidInput
from tests.conftest import generation_overrides, plugin_config
from tests.engine.test_openvino_genai import run_tokens


@pytest.fixture(scope="module")
def drafted(default_model_dir: Path) -> Iterator[OpenVINOEngine]:
    engine = OpenVINOEngine(EngineConfig(
        models_path=default_model_dir, plugin_config=plugin_config(), cache_size_gb=0,
        draft=DraftModel(default_model_dir), generation_overrides=generation_overrides()))
    yield engine
    engine.close()


def test_assisted_fields_as_ovms_sets_them(drafted: OpenVINOEngine) -> None:
    default = drafted.prepare("Hi", SamplingParams(max_tokens=4)).fields
    assert default["num_assistant_tokens"] == SPECULATIVE_NUM_ASSISTANT_TOKENS == 5
    asked = drafted.prepare("Hi", SamplingParams(max_tokens=4, num_assistant_tokens=2)).fields
    assert asked["num_assistant_tokens"] == 2
    threshold = drafted.prepare("Hi", SamplingParams(
        max_tokens=4, assistant_confidence_threshold=0.3)).fields
    assert threshold["assistant_confidence_threshold"] == 0.3
    assert not threshold.get("num_assistant_tokens")
    with pytest.raises(InvalidInput, match="max_ngram_size: only for a model served with "
                                           "prompt lookup") as caught:
        drafted.prepare("Hi", SamplingParams(max_tokens=4, max_ngram_size=2))
    assert caught.value.param == "max_ngram_size"


@pytest.mark.parametrize("assisted", [{"num_assistant_tokens": 1},
                                      {"num_assistant_tokens": 4},
                                      {"assistant_confidence_threshold": 0.2}],
                         ids=["1-token", "4-tokens", "threshold"])
def test_forced_lengths_are_exact_with_a_draft(drafted: OpenVINOEngine,
                                               assisted: dict[str, object]) -> None:
    """Several tokens may come from one step: deltas carry each token once, the count is
    exact and the last delta says why it ended."""
    deltas, tokens = run_tokens(drafted, "Write a long essay about tea.", max_tokens=30,
                                ignore_eos=True, temperature=0, **assisted)
    assert tokens == 30 == sum(len(d.token_ids) for d in deltas)
    assert deltas[-1].finish_reason == "length"


def test_a_draft_model_refuses_prompt_lookup_and_lora(default_model_dir: Path,
                                                      tmp_path: Path) -> None:
    draft = DraftModel(default_model_dir)
    with pytest.raises(EngineError, match="draft_models_path and plugin_config's "
                                          "prompt_lookup are two kinds"):
        OpenVINOEngine(EngineConfig(models_path=default_model_dir, draft=draft,
                                    plugin_config={"prompt_lookup": True}))
    with pytest.raises(EngineError, match="draft_models_path: speculative decoding cannot "
                                          "serve LoRA adapters"):
        OpenVINOEngine(EngineConfig(models_path=default_model_dir, draft=draft,
                                    lora=LoraOptions(dirs=(tmp_path,))))
    with pytest.raises(EngineError, match=r"draft_models_path .* has no openvino_model\.xml"):
        OpenVINOEngine(EngineConfig(models_path=default_model_dir,
                                    draft=DraftModel(tmp_path)))


def test_cache_eviction_refuses_only_the_prompts_openvino_genai_fails(
        default_model_dir: Path) -> None:
    """start_size 32, snapkv window 8: openvino-genai 2026.4.1 fails the step on prompts of
    33-39 tokens; those are refused before they reach it, the others run past the cap."""
    engine = OpenVINOEngine(EngineConfig(
        models_path=default_model_dir, plugin_config=plugin_config(), cache_size_gb=0,
        cache_eviction=CacheEviction(32, 128, 672), generation_overrides=generation_overrides()))
    try:
        text = "word " * 35  # 36 tokens
        with pytest.raises(InvalidInput, match=r"a prompt of 36 tokens .* fails prompts of 33 "
                                               r"to 39 tokens"):
            engine.prepare(text, SamplingParams(apply_chat_template=False))
        for words in (31, 39, 700):  # 32, 40 and 701 tokens
            _, tokens = run_tokens(engine, "word " * words, apply_chat_template=False,
                                   max_tokens=8, ignore_eos=True)
            assert tokens == 8
    finally:
        engine.close()


@pytest.mark.parametrize("mode", ["TRISHAPE", "XATTENTION"])
def test_sparse_attention_runs(default_model_dir: Path, mode: str) -> None:
    """OVMS's sparse_attention_config reaches openvino-genai and generates on the CPU (a
    prompt longer than the dense tail, so sparse prefill has work)."""
    engine = OpenVINOEngine(EngineConfig(
        models_path=default_model_dir, plugin_config=plugin_config(),
        sparse_attention=SparseAttention(mode, (("num_last_dense_tokens_in_prefill", 16),)),
        cache_interval_multiplier=4, generation_overrides=generation_overrides()))
    try:
        _, tokens = run_tokens(engine, "word " * 300, apply_chat_template=False, max_tokens=8,
                               ignore_eos=True)
        assert tokens == 8
    finally:
        engine.close()
