"""What the in-process engines (embeddings, rerank, plain models) share: the properties a
server-wide --plugin_config may carry that only LLM pipelines take, a prepared folder's checks
and token limit, and OpenVINO's errors cut to their reason."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ovserve.engine import devices
from ovserve.errors import EngineError
from ovserve.errors import error_reason as error_reason  # re-exported: the engine modules use it

#: openvino-genai LLM pipeline properties that a server-wide --plugin_config may carry; the
#: CPU plugin refuses them in other models
LLM_ONLY = frozenset({"prompt_lookup"})


def model_properties(plugin_config: Mapping[str, Any]) -> dict[str, Any]:
    """An engine's plugin_config without the LLM pipelines' own properties."""
    return {k: v for k, v in plugin_config.items() if k not in LLM_ONLY}


def check_prepared(models_path: Path, device: str, prepare: str) -> None:
    """The device is present and the folder holds an OpenVINO model (``prepare``: how to make
    it), else ``EngineError``."""
    devices.check(device)
    if not (models_path / "openvino_model.xml").is_file():
        raise EngineError(f"{models_path} has no openvino_model.xml; prepare it with {prepare}")


def model_max_length(models_path: Path, default: int = 512) -> int:
    """The model's own token limit (config.json's max_position_embeddings), else ``default``."""
    path = models_path / "config.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    value = data.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else default
