"""An adapter served by ovserve gives the tokens transformers + peft give, on the same
checkpoint in fp32 (the built-in model's Hugging Face checkpoint, exported to OpenVINO fp32)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ovserve.engine.base import EngineConfig, LoraOptions
from ovserve.engine.client import OpenVINOEngine
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


def peft_tokens(checkpoint: tuple[Path, Any], adapter: Path | None) -> list[list[int]]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path, tokenizer = checkpoint
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    out = []
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            generated = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                       max_new_tokens=TOKENS, min_new_tokens=TOKENS,
                                       do_sample=False)
        out.append(generated[0, ids.shape[1]:].tolist())
    return out


ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def test_adapter_tokens_equal_transformers_peft(checkpoint: tuple[Path, Any],
                                                fp32_model: Path, tmp_path: Path) -> None:
    """Two adapters of different ranks and layers (padded to one rank in the engine), in one
    batch with the base model, each against transformers + peft alone."""
    loras = tmp_path / "loras"
    adapters = {"attn": write_adapter(loras / "attn", seed=7, spread=0.05),
                "all": write_adapter(loras / "all", seed=8, rank=16, alpha=8, spread=0.04,
                                     targets=ALL_LINEAR)}
    engine = OpenVINOEngine(EngineConfig(fp32_model, plugin_config=F32,
                                         lora=LoraOptions(dirs=(loras,))))
    cases = [(p, a) for a in (None, *adapters) for p in PROMPTS]
    try:
        ours = dict(zip(cases, generate(engine, cases, TOKENS), strict=True))
    finally:
        engine.close()
    for name in (None, *adapters):
        expected = peft_tokens(checkpoint, adapters[name] if name else None)
        assert [ours[(p, name)] for p in PROMPTS] == expected, name
        if name:  # the adapter does change the output
            assert [ours[(p, name)] for p in PROMPTS] != [ours[(p, None)] for p in PROMPTS]
