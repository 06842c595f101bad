"""Deterministic mode's engine settings (engine.determinism): how it schedules."""

from __future__ import annotations

from pathlib import Path

from ovserve.engine.base import EngineConfig
from ovserve.engine.process import scheduler_config
from ovserve.engine.registry import EngineRegistry
from tests.engine.test_registry import Factory


def test_one_sequence_at_a_time_whole_prompts_and_no_prefix_cache(tmp_path: Path) -> None:
    plain = scheduler_config(EngineConfig(models_path=tmp_path, plugin_config={"X": 1}))
    assert plain.enable_prefix_caching and plain.max_num_seqs == 256
    fixed = scheduler_config(EngineConfig(models_path=tmp_path, deterministic=True))
    assert not fixed.enable_prefix_caching and fixed.max_num_seqs == 1
    # a step prefills one whole prompt or decodes, never both
    assert plain.dynamic_split_fuse and not fixed.dynamic_split_fuse
    assert fixed.max_num_batched_tokens >= 131072


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
