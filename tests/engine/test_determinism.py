"""Deterministic mode's engine settings (engine.determinism): what it compiles and schedules."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ovserve.engine import determinism
from ovserve.engine.base import EngineConfig
from ovserve.engine.process import scheduler_config
from ovserve.engine.registry import EngineRegistry
from tests.engine.test_registry import Factory


def test_properties_are_laid_over_the_graphs(caplog: pytest.LogCaptureFixture) -> None:
    given = {"INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": "bf16"}
    assert determinism.plugin_config(given, False) == given
    with caplog.at_level(logging.WARNING):
        out = determinism.plugin_config(given, True)
    assert out == {"INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": "f32",
                   "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}
    assert "INFERENCE_PRECISION_HINT='bf16' replaced by 'f32'" in caplog.text


def test_no_prefix_cache_and_whole_prompts(tmp_path: Path) -> None:
    plain = scheduler_config(EngineConfig(models_path=tmp_path))
    assert plain.enable_prefix_caching and plain.dynamic_split_fuse
    fixed = scheduler_config(EngineConfig(models_path=tmp_path,
                                          deterministic=True))
    assert not fixed.enable_prefix_caching and not fixed.dynamic_split_fuse


def test_the_server_flag_reaches_every_llm_engine(tmp_path: Path) -> None:
    factory = Factory()
    registry = EngineRegistry(factory, deterministic=True)
    registry.acquire("graph", tmp_path, enable_prefix_caching=True)
    ((config, _),) = factory.made
    assert config.deterministic and config.enable_prefix_caching  # the scheduler drops it


async def test_a_graph_asks_for_it(tmp_path: Path) -> None:
    from ovserve.nodes import BUILTIN_CALCULATORS
    from ovserve.serving.registry import Registry
    from tests.engine.test_registry import llm_graph

    model = tmp_path / "model"
    model.mkdir()
    (model / "openvino_model.xml").write_text("<net/>")
    factory = Factory()
    registry = Registry(BUILTIN_CALCULATORS, EngineRegistry(factory))
    await registry.load([llm_graph(tmp_path, "llm", model, "deterministic: true,")])
    ((config, _),) = factory.made
    assert config.deterministic
    await registry.unload()
