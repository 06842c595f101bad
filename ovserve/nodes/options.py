"""Checks and paths shared by the built-in nodes' options (models_path, plugin_config)."""

from __future__ import annotations

import json
from pathlib import Path


def resolve(path: str, base_path: Path) -> Path:
    """A path from a graph's options: absolute, or relative to the graph's base path."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else (base_path / candidate).resolve()


def model_problems(field: str, path: Path, prepare: str) -> list[str]:
    """Why ``path`` is not a prepared OpenVINO model (``prepare``: the command that makes it)."""
    if (path / "openvino_model.xml").is_file():
        return []
    return [f"{field} {path} holds no openvino_model.xml (prepare it with {prepare})"]


def plugin_config_problems(text: str) -> list[str]:
    if not text:
        return []
    try:
        if not isinstance(json.loads(text), dict):
            raise ValueError("not an object")
    except ValueError as exc:
        return [f"plugin_config is not a JSON object: {exc}"]
    return []


def stream_problems(tag: str, refs: list[str], kind: str) -> list[str]:
    """``tag`` must be among a node's ``refs`` (its input or output stream tags)."""
    return [] if tag in refs else [f"no {tag} {kind} stream"]
