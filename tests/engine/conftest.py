"""The built-in model's engine as the server builds it (the kernel settings' variables laid
over it), one per test module that uses it; and a model folder that only looks prepared (for
the registry's bookkeeping, which never loads it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ovserve.engine import EngineConfig
from ovserve.engine.client import OpenVINOEngine
from tests.conftest import generation_overrides, plugin_config


@pytest.fixture(scope="module")
def engine(default_model_dir: Path) -> Iterator[OpenVINOEngine]:
    engine = OpenVINOEngine(EngineConfig(models_path=default_model_dir,
                                         plugin_config=plugin_config(),
                                         generation_overrides=generation_overrides()),
                            restart_delays=(0.1, 1.0))
    yield engine
    engine.close()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A folder with an ``openvino_model.xml`` that is not a model (engines are fakes)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "openvino_model.xml").write_text("<net/>")
    return folder
