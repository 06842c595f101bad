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


def test_adapter_tokens_equal_transformers_peft(checkpoint: tuple[Path, Any],
                                                fp32_model: Path, tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "loras" / "ref", seed=7, spread=0.05)
    engine = OpenVINOEngine(EngineConfig(fp32_model, plugin_config=F32,
                                         lora=LoraOptions(dirs=(adapter.parent,))))
    try:
        ours = generate(engine, [(p, "ref") for p in PROMPTS], TOKENS)
        ours_base = generate(engine, [(p, None) for p in PROMPTS], TOKENS)
    finally:
        engine.close()
    assert ours == peft_tokens(checkpoint, adapter)
    assert ours_base == peft_tokens(checkpoint, None)
    assert ours != ours_base  # the adapter does change the output
