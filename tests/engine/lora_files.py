"""PEFT adapter folders for tests: random LoRA matrices shaped for the built-in model."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from tests.conftest import DEFAULT_MODEL_DIR


@cache
def model_shapes() -> dict[str, tuple[int, int]]:
    """(out, in) of every adaptable linear layer of the built-in model."""
    import openvino as ov

    from ovserve.engine.lora_graph import linear_shapes

    return linear_shapes(ov.Core().read_model(DEFAULT_MODEL_DIR / "openvino_model.xml"))


def write_adapter(folder: Path, *, seed: int, rank: int = 8, alpha: float = 16,
                  targets: tuple[str, ...] = ("q_proj", "v_proj"), spread: float = 0.05,
                  in_features: int | None = None) -> Path:
    """A PEFT adapter folder with random A and B (``in_features``: make it for another base)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for module, (out_f, in_f) in model_shapes().items():
        if module.rsplit(".", 1)[1] in targets:
            key = f"base_model.model.{module}"
            tensors[f"{key}.lora_A.weight"] = (
                rng.standard_normal((rank, in_features or in_f)) * spread).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = (
                rng.standard_normal((out_f, rank)) * spread).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": list(targets),
        "task_type": "CAUSAL_LM"}))
    return folder
