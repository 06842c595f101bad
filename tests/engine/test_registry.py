"""The engine registry with fake engines: sharing, conflicts named by graph, closing on unload,
and Python handlers reaching it through ``shared_engine``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovserve.engine import EngineConfig, EngineRegistry, SamplingParams
from ovserve.engine.fake import FakeEngine
from ovserve.errors import EngineConflict, EngineUnavailable
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.serving.registry import Registry
from ovserve.serving.server_config import GraphEntry
from tests.conftest import REPO
from tests.graphs import single_node_graph


class Factory:
    def __init__(self) -> None:
        self.made: list[tuple[EngineConfig, FakeEngine]] = []

    def __call__(self, config: EngineConfig) -> FakeEngine:
        engine = FakeEngine(config.models_path.name)
        self.made.append((config, engine))
        return engine


def llm_graph(root: Path, name: str, model: Path, options: str = "") -> GraphEntry:
    """The built-in LLM graph on ``model`` with extra node options."""
    text = (REPO / "graphs/llm/graph.pbtxt").read_text()
    text = text.replace('"../../models/smollm2-135m-instruct",',
                        f'"{model}", {options}' if options else f'"{model}",')
    text = text.replace("max_num_seqs: 256,\n", "")  # left to other graphs to set
    folder = root / name
    folder.mkdir()
    (folder / "graph.pbtxt").write_text(text)
    return GraphEntry(name=name, base_path=folder, graph_path=folder / "graph.pbtxt")


def test_one_engine_per_model_and_conflicts_name_both_graphs(tmp_path: Path,
                                                             model: Path) -> None:
    factory = Factory()
    engines = EngineRegistry(factory)
    first = engines.acquire("graph_a", model, max_num_seqs=8)
    assert engines.acquire("graph_b", model / "." , device="CPU") is first  # same folder
    assert engines.acquire("graph_c", model) is first  # no options: takes the loaded engine
    with pytest.raises(EngineConflict, match=r"graphs 'graph_a' and 'graph_d' ask for model "
                                             r".*model with different max_num_seqs: 8 and 16"):
        engines.acquire("graph_d", model, max_num_seqs=16)
    assert len(factory.made) == 1 and factory.made[0][0].max_num_seqs == 8


def test_the_last_user_closes_the_engine(model: Path) -> None:
    engines = EngineRegistry(Factory())
    engine = engines.acquire("a", model)
    engines.acquire("b", model)
    engines.release("a")
    assert engines.engines() == [engine] and engine.ready
    engines.release("b")
    assert engines.engines() == []
    with pytest.raises(EngineUnavailable, match="shut down"):
        engine.submit(engine.prepare("hi", SamplingParams(max_tokens=2)))


async def test_servables_share_the_registry_and_unloading_closes(tmp_path: Path,
                                                                  model: Path) -> None:
    factory = Factory()
    handler = single_node_graph(tmp_path / "handler", f'''
        from ovserve.engine import shared_engine
        class OvmsPythonModel:
            def initialize(self, kwargs):
                self.engine = shared_engine({str(model)!r})
            def execute(self, inputs):
                return [Tensor("result", b"x")]
    ''')
    registry = Registry(BUILTIN_CALCULATORS, EngineRegistry(factory))
    await registry.load([llm_graph(tmp_path, "llm", model, "max_num_seqs: 4,"), handler,
                         llm_graph(tmp_path, "other", model, "max_num_seqs: 5,")])
    assert registry.states["llm"].servable is not None
    assert registry.states["handler"].servable is not None
    error = registry.states["other"].error or ""
    assert "graphs 'llm' and 'other'" in error and "max_num_seqs: 4 and 5" in error
    (engine,) = registry.engines.engines()
    assert len(factory.made) == 1 and registry.engines.engines("handler") == [engine]
    assert registry.engines.ready()
    # KServe v2: the server is ready when every model is; 'other' failed to load
    assert not registry.ready()
    await registry.unload()
    assert registry.engines.engines() == [] and not engine.ready


async def test_graph_lora_dir_and_the_servers_default(tmp_path: Path, model: Path) -> None:
    """A graph's lora_dir (relative to its folder) and limits reach the engine's config; a
    graph that sets none gets the server's (--lora_dir)."""
    from ovserve.engine.base import LoraOptions

    factory = Factory()
    server_default = LoraOptions(dirs=(tmp_path / "server-loras",))
    registry = Registry(BUILTIN_CALCULATORS, EngineRegistry(factory, lora=server_default))
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "openvino_model.xml").write_text("<net/>")
    await registry.load([
        llm_graph(tmp_path, "own", model, 'lora_dir: "loras", max_loras: 2, max_lora_rank: 16,'
                  " lora_refresh_interval: 5,"),
        llm_graph(tmp_path, "default", other)])
    assert all(state.servable is not None for state in registry.states.values())
    configs = {config.models_path.name: config.lora for config, _ in factory.made}
    assert configs["model"] == LoraOptions(dirs=(tmp_path / "own" / "loras",), max_loras=2,
                                           max_lora_rank=16, refresh_seconds=5)
    assert configs["other-model"] == server_default
    await registry.unload()
