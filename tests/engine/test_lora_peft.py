"""An adapter served by ovserve gives the tokens transformers + peft give, on the same
checkpoint in fp32 (the built-in model's Hugging Face checkpoint, exported to OpenVINO fp32):
every token ovserve picks is, teacher-forced through transformers + peft, a top token there
(up to the two implementations' noise, so near-ties may go either way on any CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ovserve.engine.base import EngineConfig, LoraOptions, SamplingParams
from ovserve.engine.client import OpenVINOEngine
from tests.conftest import generation_overrides, plugin_config
from tests.engine.lora_files import write_adapter
from tests.engine.test_lora_engine import F32, PROMPTS, generate

TOKENS = 16


@pytest.fixture(scope="module")
def checkpoint() -> tuple[Path, Any]:
    from ovserve.toolchain.finetune import base_checkpoint

    return base_checkpoint("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def fp32_model(checkpoint: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory
               ) -> Path:
    from ovserve.toolchain.export import export_ir

    output = tmp_path_factory.mktemp("fp32")
    export_ir(str(checkpoint[0]), output, "fp32")
    return output


def peft_gaps(checkpoint: tuple[Path, Any], adapter: Path | None,
              sequences: list[tuple[list[int], list[int]]]) -> list[list[float]]:
    """For each (prompt, generated tokens), teacher-forced through transformers (+ peft with
    ``adapter``): how far below the top logit each generated token's logit is."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(checkpoint[0], dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    gaps = []
    for prompt, generated in sequences:
        ids = torch.tensor([prompt + generated])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
        steps = logits[len(prompt) - 1:len(prompt) - 1 + len(generated)]  # predicts each
        chosen = steps[torch.arange(len(generated)), torch.tensor(generated)]
        gaps.append((steps.max(dim=-1).values - chosen).tolist())
    return gaps


ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def test_adapter_tokens_equal_transformers_peft(checkpoint: tuple[Path, Any],
                                                fp32_model: Path, tmp_path: Path) -> None:
    """Two adapters of different ranks and layers (padded to one rank in the engine), in one
    batch with the base model, each against transformers + peft alone. A wrong adapter, rank
    padding or scale puts ovserve's tokens logits below the reference's top: the adapters are
    strong enough that the base model's tokens, under an adapter's reference, show such a
    gap (the check has teeth)."""
    loras = tmp_path / "loras"
    adapters = {"attn": write_adapter(loras / "attn", seed=7, spread=0.08),
                "all": write_adapter(loras / "all", seed=8, rank=16, alpha=8, spread=0.07,
                                     targets=ALL_LINEAR)}
    config = EngineConfig(fp32_model, plugin_config=plugin_config(F32),
                          generation_overrides=generation_overrides(),
                          lora=LoraOptions(dirs=(loras,)))
    # f32 in both: the implementations differ in the last bits; bf16 (OVSERVE_PLUGIN_CONFIG
    # may ask for it) moves logits by tenths
    tol = 0.02 if config.plugin_config.get("INFERENCE_PRECISION_HINT") == "f32" else 0.5
    engine = OpenVINOEngine(config)
    cases = [(p, a) for a in (None, *adapters) for p in PROMPTS]
    try:
        prompts = {p: engine.prepare(p, SamplingParams(apply_chat_template=False)).token_ids
                   for p in PROMPTS}
        ours = {case: ids for case, (ids, _) in zip(
            cases, generate(engine, cases, TOKENS), strict=True)}
    finally:
        engine.close()
    tokenizer = checkpoint[1]
    for p in PROMPTS:  # the same prompt tokens on both sides
        assert prompts[p] == tokenizer(p, add_special_tokens=False)["input_ids"], p
    assert all(len(ids) == TOKENS for ids in ours.values())
    for name in (None, *adapters):
        reference = adapters[name] if name else None
        gaps = peft_gaps(checkpoint, reference, [(prompts[p], ours[(p, name)]) for p in PROMPTS])
        assert max(max(g) for g in gaps) <= tol, (name, gaps)
        if name:  # the adapter does change the output: the base model's tokens are off here
            base = peft_gaps(checkpoint, reference,
                             [(prompts[p], ours[(p, None)]) for p in PROMPTS])
            assert max(max(g) for g in base) > 2 * tol, (name, base)
