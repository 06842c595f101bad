"""Shared fixtures: the prepared default model and the repository's paths."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO / "models" / "smollm2-135m-instruct"


def generation_overrides() -> dict[str, Any]:
    """What OVSERVE_OVERRIDE_GENERATION_CONFIG lays over the model's defaults: servers started
    by the tests read it themselves; engines the tests build take it from here. Running the
    suite with e.g. '{"temperature": 0.8, "seed": 2}' checks that no verdict depends on the
    text the model happens to sample."""
    overrides: dict[str, Any] = json.loads(
        os.environ.get("OVSERVE_OVERRIDE_GENERATION_CONFIG") or "{}")
    return overrides


def engine_registry(**kwargs: Any) -> Any:
    """An EngineRegistry for a test's in-process servables that lays OVSERVE_PLUGIN_CONFIG
    over every engine, as the server does (`make test-kernels`)."""
    import json
    import os

    from ovserve.engine.devices import DeviceChoice
    from ovserve.engine.registry import EngineRegistry

    parsed = json.loads(os.environ.get("OVSERVE_PLUGIN_CONFIG") or "{}")
    devices = DeviceChoice(None, {k.upper(): v for k, v in parsed.items()})
    return EngineRegistry(devices=devices, **kwargs)


def plugin_config(own: dict[str, Any] | None = None) -> dict[str, Any]:
    """CPU properties for an engine a test builds itself: ``own`` with the CPU entry of
    OVSERVE_PLUGIN_CONFIG laid over it, as the server lays --plugin_config over a graph's
    (servers started by the tests read the variable themselves). Running the suite with e.g.
    '{"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}' checks that no verdict depends on the
    CPU's default kernels (`make test-kernels`)."""
    from ovserve.engine.devices import DeviceChoice

    parsed = json.loads(os.environ.get("OVSERVE_PLUGIN_CONFIG") or "{}")
    choice = DeviceChoice(None, {k.upper(): v for k, v in parsed.items()})
    applied = choice.apply({"device": "CPU", "plugin_config": dict(own or {})})
    return dict(applied.get("plugin_config") or {})


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The built-in model as `make test` prepares it (fails, never skips, when absent)."""
    if not (DEFAULT_MODEL_DIR / "openvino_model.xml").is_file():
        pytest.fail(f"{DEFAULT_MODEL_DIR} is not prepared; run `make test`, which prepares it")
    return DEFAULT_MODEL_DIR


EMBEDDING_MODEL_DIR = REPO / "models" / "all-minilm-l6-v2"


@pytest.fixture(scope="session")
def embedding_model_dir() -> Path:
    """The built-in embedding model as `make test` prepares it (fails, never skips)."""
    if not (EMBEDDING_MODEL_DIR / "openvino_model.xml").is_file():
        pytest.fail(f"{EMBEDDING_MODEL_DIR} is not prepared; run `make test`, which prepares it")
    return EMBEDDING_MODEL_DIR


RERANKER_DIR = REPO / "models" / "minilm-l6-reranker"


@pytest.fixture(scope="session")
def reranker_model_dir() -> Path:
    """The built-in reranker as `make test` prepares it (fails, never skips, when absent)."""
    if not (RERANKER_DIR / "openvino_model.xml").is_file():
        pytest.fail(f"{RERANKER_DIR} is not prepared; run `make test`, which prepares it")
    return RERANKER_DIR
