"""LoRA adapters in Hugging Face PEFT format: finding, reading and checking them.

An adapter is a folder with ``adapter_config.json`` and ``adapter_model.safetensors`` (NIM's
and vLLM's layout); its folder name is its model id. ``read_adapter`` checks it against the
base model (module names, shapes, rank limit) and applies PEFT's scale (``lora_alpha / r``, or
``lora_alpha / sqrt(r)`` with rsLoRA), which openvino-genai's own ``Adapter`` leaves out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovserve.engine.lora_graph import LoraWeights
from ovserve.errors import AdapterError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# PEFT key: base_model.model.<module>.lora_A.weight (some savers add the adapter name)
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+?)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class AdapterSource:
    """An adapter known to the server: its model id and folder."""

    name: str
    path: Path


def check_name(name: str) -> str:
    """An adapter id must be usable as a model id in URLs and JSON."""
    if not _NAME.match(name):
        raise AdapterError(f"lora_name {name!r}: use letters, digits, '.', '_' or '-' "
                           "(at most 128)")
    return name


def scan(folder: Path) -> list[AdapterSource]:
    """The adapters in ``folder``: every sub-folder holding an adapter_config.json."""
    if not folder.is_dir():
        return []
    return sorted((AdapterSource(p.name, p) for p in folder.iterdir()
                   if (p / CONFIG_FILE).is_file() and _NAME.match(p.name)),
                  key=lambda s: s.name)


def read_config(path: Path, name: str) -> dict[str, object]:
    """``adapter_config.json`` of the adapter ``name`` in folder ``path``."""
    config_file = path / CONFIG_FILE
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise AdapterError(f"adapter {name!r}: no {CONFIG_FILE} in its folder") from None
    except (OSError, ValueError) as exc:
        raise AdapterError(f"adapter {name!r}: {CONFIG_FILE} is not valid JSON: "
                           f"{exc}") from exc
    if not isinstance(config, dict):
        raise AdapterError(f"adapter {name!r}: {CONFIG_FILE} is not a JSON object")
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise AdapterError(f"adapter {name!r}: peft_type {peft_type} is not supported "
                           "(LoRA only)")
    if config.get("use_dora"):
        raise AdapterError(f"adapter {name!r}: DoRA adapters are not supported")
    return config


def read_adapter(source: AdapterSource, shapes: Mapping[str, tuple[int, int]],
                 max_rank: int) -> LoraWeights:
    """Read and check an adapter against the base model's linear layers ``shapes``
    (module -> (out, in)); raises ``AdapterError`` saying what is wrong."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    name = source.name
    config = read_config(source.path, name)
    weights_file = source.path / WEIGHTS_FILE
    if not weights_file.is_file():
        raise AdapterError(f"adapter {name!r}: no {WEIGHTS_FILE} in its folder")
    try:
        tensors = load_file(weights_file)
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterError(f"adapter {name!r}: {WEIGHTS_FILE} is not a readable safetensors "
                           f"file ({exc})") from exc
    a: dict[str, np.ndarray] = {}
    b: dict[str, np.ndarray] = {}
    for key, tensor in tensors.items():
        match = _KEY.match(key)
        if not match:
            raise AdapterError(f"adapter {name!r}: unexpected tensor {key!r} (only LoRA A/B "
                               "matrices of linear layers are supported)")
        module = match["module"]
        if module not in shapes:
            raise AdapterError(f"adapter {name!r}: it adapts {module!r}, which the base model "
                               "has no linear layer for (is it an adapter for another model?)")
        (a if match["ab"] == "A" else b)[module] = tensor.astype(np.float32)
    if not a or a.keys() != b.keys():
        raise AdapterError(f"adapter {name!r}: it needs lora_A and lora_B for every module")
    rank = 0
    for module in a:
        out_f, in_f = shapes[module]
        r = a[module].shape[0]
        if a[module].shape != (r, in_f) or b[module].shape != (out_f, r):
            raise AdapterError(
                f"adapter {name!r}: {module} has A {tuple(a[module].shape)} and B "
                f"{tuple(b[module].shape)}; the base model needs ({r}, {in_f}) and "
                f"({out_f}, {r}) (is it an adapter for another model?)")
        rank = max(rank, r)
    if rank > max_rank:
        raise AdapterError(f"adapter {name!r}: rank {rank} is over max_lora_rank {max_rank}")
    declared = config.get("r", rank)
    alpha = config.get("lora_alpha", declared)
    if not isinstance(declared, int) or not isinstance(alpha, (int, float)) or declared <= 0:
        raise AdapterError(f"adapter {name!r}: {CONFIG_FILE} needs a positive integer r and a "
                           "numeric lora_alpha")
    scale = alpha / (math.sqrt(declared) if config.get("use_rslora") else declared)
    return LoraWeights(rank=rank, scale=float(scale), a=a, b=b)
