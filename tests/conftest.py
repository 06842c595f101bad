"""Shared fixtures: the prepared default model and the repository's paths."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO / "models" / "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The built-in model as `make test` prepares it (fails, never skips, when absent)."""
    if not (DEFAULT_MODEL_DIR / "openvino_model.xml").is_file():
        pytest.fail(f"{DEFAULT_MODEL_DIR} is not prepared; run `make test`, which prepares it")
    return DEFAULT_MODEL_DIR
