"""OVMS 2026's LLMCalculatorOptions in ovserve: every field parses with OVMS's number and type,
what openvino-genai supports reaches the engine's configuration (and its SchedulerConfig) as
OVMS passes it, the agent fields are kept and reported, and the rest is a load error naming
the field. Fake engines except where a SchedulerConfig is built (no model is loaded here)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

from ovserve.engine import EngineConfig, EngineRegistry, process
from ovserve.engine.base import CacheEviction, DraftModel, SparseAttention
from ovserve.engine.fake import FakeEngine
from ovserve.errors import EngineConflict, InvalidInput
from ovserve.graph.proto.llm_calculator_pb2 import LLMCalculatorOptions
from ovserve.nodes import BUILTIN_CALCULATORS, llm_options
from ovserve.nodes.llm import LLMCalculator
from ovserve.serving.registry import Registry
from ovserve.serving.servable import Servable
from ovserve.serving.server_config import GraphEntry
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "ovms_2026_3"
T = FieldDescriptor
#: OVMS 2026's LLMCalculatorOptions (src/llm/llm_calculator.proto at 7e4df0c): name -> number,
#: type, and the nested message or enum type's name
OVMS_FIELDS: dict[str, tuple[int, int, str | None]] = {
    "models_path": (1, T.TYPE_STRING, None),
    "max_num_batched_tokens": (2, T.TYPE_UINT64, None),
    "cache_size": (3, T.TYPE_UINT64, None),
    "max_num_seqs": (4, T.TYPE_UINT64, None),
    "dynamic_split_fuse": (5, T.TYPE_BOOL, None),
    "device": (6, T.TYPE_STRING, None),
    "plugin_config": (7, T.TYPE_STRING, None),
    "best_of_limit": (8, T.TYPE_UINT32, None),
    "max_tokens_limit": (9, T.TYPE_UINT32, None),
    "enable_prefix_caching": (10, T.TYPE_BOOL, None),
    "draft_models_path": (11, T.TYPE_STRING, None),
    "draft_device": (12, T.TYPE_STRING, None),
    "draft_max_num_batched_tokens": (13, T.TYPE_UINT64, None),
    "draft_cache_size": (14, T.TYPE_UINT64, None),
    "draft_block_size": (15, T.TYPE_UINT64, None),
    "draft_max_num_seqs": (16, T.TYPE_UINT64, None),
    "draft_dynamic_split_fuse": (17, T.TYPE_BOOL, None),
    "draft_eagle3_mode": (18, T.TYPE_BOOL, None),
    "pipeline_type": (19, T.TYPE_ENUM, "PipelineType"),
    "cache_eviction_config": (20, T.TYPE_MESSAGE, "CacheEvictionConfig"),
    "tool_parser": (21, T.TYPE_STRING, None),
    "reasoning_parser": (22, T.TYPE_STRING, None),
    "enable_tool_guided_generation": (23, T.TYPE_BOOL, None),
    "sparse_attention_config": (24, T.TYPE_MESSAGE, "SparseAttentionConfig"),
    "cache_interval_multiplier": (25, T.TYPE_UINT64, None),
    "chat_template_mode": (26, T.TYPE_ENUM, "ChatTemplateMode"),
}
OVMS_NESTED: dict[str, dict[str, tuple[int, int]]] = {
    "KVCrushConfig": {"budget": (2, T.TYPE_UINT64), "anchor_point_mode": (3, T.TYPE_ENUM),
                      "rng_seed": (4, T.TYPE_UINT64)},
    "CacheEvictionConfig": {
        "aggregation_mode": (1, T.TYPE_ENUM), "start_size": (2, T.TYPE_UINT64),
        "recent_size": (3, T.TYPE_UINT64), "max_cache_size": (4, T.TYPE_UINT64),
        "apply_rotation": (5, T.TYPE_BOOL), "snapkv_window_size": (6, T.TYPE_UINT64),
        "kv_crush_config": (7, T.TYPE_MESSAGE)},
    "SparseAttentionConfig": {
        "mode": (1, T.TYPE_ENUM), "num_last_dense_tokens_in_prefill": (2, T.TYPE_UINT64),
        "num_retained_start_tokens_in_cache": (3, T.TYPE_UINT64),
        "num_retained_recent_tokens_in_cache": (4, T.TYPE_UINT64),
        "xattention_threshold": (5, T.TYPE_FLOAT), "xattention_block_size": (6, T.TYPE_UINT64),
        "xattention_stride": (7, T.TYPE_UINT64)},
}
OVMS_ENUMS = {
    "PipelineType": {"LM": 0, "VLM": 1, "LM_CB": 2, "VLM_CB": 3, "OMNI": 4, "AUTO": 5},
    "ChatTemplateMode": {"MINJA": 0, "JINJA": 1},
    "KVCrushConfig.AnchorPointMode": {"RANDOM": 0, "ZEROS": 1, "ONES": 2, "MEAN": 3,
                                      "ALTERNATING": 4},
    "CacheEvictionConfig.AggregationMode": {"SUM": 0, "NORM_SUM": 1},
    "SparseAttentionConfig.SparseAttentionMode": {"TRISHAPE": 0, "XATTENTION": 1},
}

#: Every OVMS field set (as a graph's node_options writes them)
EVERY_FIELD = """
models_path: "./", max_num_batched_tokens: 512, cache_size: 0, max_num_seqs: 8,
dynamic_split_fuse: false, device: "CPU", plugin_config: '{"KV_CACHE_PRECISION": "u8"}',
best_of_limit: 4, max_tokens_limit: 100, enable_prefix_caching: false,
draft_models_path: "./draft", draft_device: "CPU", draft_max_num_batched_tokens: 256,
draft_cache_size: 2, draft_block_size: 32, draft_max_num_seqs: 4,
draft_dynamic_split_fuse: true, draft_eagle3_mode: False, pipeline_type: LM_CB,
cache_eviction_config: {
  aggregation_mode: SUM, start_size: 32, recent_size: 128, max_cache_size: 672,
  apply_rotation: true, snapkv_window_size: 0,
  kv_crush_config: { budget: 8, anchor_point_mode: ALTERNATING, rng_seed: 42 }
}
tool_parser: "hermes3", reasoning_parser: "qwen3", enable_tool_guided_generation: true,
sparse_attention_config: {
  mode: XATTENTION, num_last_dense_tokens_in_prefill: 10,
  num_retained_start_tokens_in_cache: 64, num_retained_recent_tokens_in_cache: 256,
  xattention_threshold: 0.5, xattention_block_size: 128, xattention_stride: 16
}
cache_interval_multiplier: 4, chat_template_mode: JINJA
"""


def parse(text: str) -> LLMCalculatorOptions:
    return text_format.Parse(text, LLMCalculatorOptions())


def model_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "openvino_model.xml").write_text("<net/>")
    return path


def test_every_ovms_field_has_its_number_type_and_nested_message() -> None:
    fields = LLMCalculatorOptions.DESCRIPTOR.fields_by_name
    for name, (number, kind, nested) in OVMS_FIELDS.items():
        field = fields[name]
        assert (field.number, field.type) == (number, kind), name
        if nested is not None:
            nested_type = field.message_type or field.enum_type
            assert nested_type is not None and nested_type.name == nested, name
    for message, nested_fields in OVMS_NESTED.items():
        descriptor = LLMCalculatorOptions.DESCRIPTOR.nested_types_by_name[message]
        for name, (number, kind) in nested_fields.items():
            field = descriptor.fields_by_name[name]
            assert (field.number, field.type) == (number, kind), f"{message}.{name}"
    for path, values in OVMS_ENUMS.items():
        owner = LLMCalculatorOptions.DESCRIPTOR
        *outer, enum = path.split(".")
        for name in outer:
            owner = owner.nested_types_by_name[name]
        assert {v.name: v.number for v in owner.enum_types_by_name[enum].values} == values
    # ovserve's own fields stay out of OVMS's range
    assert all(f.number >= 100 for f in LLMCalculatorOptions.DESCRIPTOR.fields
               if f.name not in OVMS_FIELDS)


def test_a_text_with_every_field_round_trips() -> None:
    options = parse(EVERY_FIELD)
    assert {f.name for f, _ in options.ListFields()} == set(OVMS_FIELDS)
    again = parse(text_format.MessageToString(options))
    assert again == options
    binary = LLMCalculatorOptions.FromString(options.SerializeToString())
    assert binary == options
    assert options.cache_eviction_config.kv_crush_config.anchor_point_mode == \
        LLMCalculatorOptions.KVCrushConfig.ALTERNATING
    assert options.sparse_attention_config.xattention_threshold == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["default", "draft_parsers", "parsers_eviction"])
def test_the_exported_graphs_parse_and_validate(tmp_path: Path, name: str) -> None:
    from ovserve.graph.config import node_options, parse_graph_text
    from ovserve.graph.validation import build_graph

    base = model_folder(tmp_path / "model")
    model_folder(base / "HuggingFaceTB-SmolLM2-135M-Instruct")
    spec = build_graph(parse_graph_text((FIXTURES / name / "graph.pbtxt").read_text()),
                       name=name, path=None, base_path=base, calculators=BUILTIN_CALCULATORS)
    (node,) = spec.nodes
    assert [ref.tag for ref in node.side_packets] == ["LLM_NODE_RESOURCES",
                                                      "LLM_NODE_EXECUTION_CONTEXTS"]
    options = node_options(node.config, LLMCalculatorOptions)
    assert isinstance(options, LLMCalculatorOptions)
    assert options.cache_size == 0 and options.HasField("cache_size")


def test_engine_fields_of_every_field(tmp_path: Path) -> None:
    fields = llm_options.engine_fields(parse(EVERY_FIELD), tmp_path)
    assert fields == {
        "max_num_seqs": 8, "max_num_batched_tokens": 512, "enable_prefix_caching": False,
        "dynamic_split_fuse": False, "cache_interval_multiplier": 4, "device": "CPU",
        "plugin_config": {"KV_CACHE_PRECISION": "u8"}, "cache_size_gb": 0.0,
        "cache_eviction": CacheEviction(32, 128, 672, "SUM", True, 0, (8, "ALTERNATING", 42)),
        "sparse_attention": SparseAttention("XATTENTION", (
            ("num_last_dense_tokens_in_prefill", 10),
            ("num_retained_start_tokens_in_cache", 64),
            ("num_retained_recent_tokens_in_cache", 256), ("xattention_threshold", 0.5),
            ("xattention_block_size", 128), ("xattention_stride", 16))),
        "draft": DraftModel(tmp_path / "draft", "CPU", 256, 2.0, 4, True, False),
    }
    assert llm_options.agent_options(parse(EVERY_FIELD)) == {
        "tool_parser": "hermes3", "reasoning_parser": "qwen3",
        "enable_tool_guided_generation": True, "chat_template_mode": "JINJA"}
    # the parsers act now: nothing is reported as kept; a format OVMS knows and ovserve does
    # not parse is a load error naming it
    assert llm_options.problems(parse('models_path: "m", tool_parser: "onyx"'), Path(".")) \
        == []  # every OVMS 2026 parser is parsed now
    assert llm_options.problems(parse(
        'models_path: "m", tool_parser: "gptoss", reasoning_parser: "gemma4"'), Path(".")) == []
    assert llm_options.problems(parse(
        'models_path: "m", chat_template_mode: MINJA, tool_parser: "none"'), Path(".")) == []


def test_cache_size_0_is_a_dynamic_cache_in_the_scheduler(tmp_path: Path) -> None:
    fields = llm_options.engine_fields(parse('models_path: "m", cache_size: 0'), tmp_path)
    config = EngineConfig(models_path=tmp_path, **fields)
    assert config.dynamic_cache
    scheduler = process.scheduler_config(config)
    # openvino-genai: cache_size and num_kv_blocks both 0 turn dynamic allocation on
    assert (scheduler.cache_size, scheduler.num_kv_blocks) == (0, 0)
    sized = process.scheduler_config(EngineConfig(models_path=tmp_path, cache_size_gb=3))
    assert (sized.cache_size, sized.num_kv_blocks) == (3, 0)
    assert not EngineConfig(models_path=tmp_path).dynamic_cache  # ovserve's default: 1 GB


def test_scheduler_and_draft_scheduler_as_ovms_builds_them(tmp_path: Path) -> None:
    fields = llm_options.engine_fields(parse(EVERY_FIELD), tmp_path)
    config = EngineConfig(models_path=tmp_path, **fields)
    scheduler = process.scheduler_config(config)
    assert scheduler.use_cache_eviction and scheduler.use_sparse_attention
    assert scheduler.cache_eviction_config.get_start_size() == 32
    assert scheduler.cache_eviction_config.get_max_cache_size() == 672
    assert scheduler.sparse_attention_config.num_last_dense_tokens_in_prefill == 10
    assert scheduler.sparse_attention_config.xattention_stride == 16
    assert scheduler.cache_interval_multiplier == 4
    assert not scheduler.dynamic_split_fuse and scheduler.max_num_batched_tokens == 512
    draft = process.draft_scheduler_config(config)
    assert (draft.max_num_batched_tokens, draft.cache_size, draft.max_num_seqs,
            draft.dynamic_split_fuse) == (256, 2, 4, True)
    assert not draft.use_cache_eviction and not draft.use_sparse_attention
    # unset draft_* fields take the main model's
    inherit = EngineConfig(models_path=tmp_path, cache_size_gb=0, max_num_seqs=7,
                           draft=DraftModel(tmp_path / "draft"))
    draft = process.draft_scheduler_config(inherit)
    assert (draft.max_num_batched_tokens, draft.cache_size, draft.max_num_seqs) == (2048, 0, 7)
    plain = process.scheduler_config(EngineConfig(models_path=tmp_path))
    assert not plain.use_cache_eviction and not plain.use_sparse_attention


def test_deterministic_mode_holds_for_the_draft_too(tmp_path: Path) -> None:
    config = EngineConfig(models_path=tmp_path, deterministic=True, max_num_seqs=64,
                          draft=DraftModel(tmp_path / "draft", max_num_seqs=32,
                                           dynamic_split_fuse=True))
    for scheduler in (process.scheduler_config(config), process.draft_scheduler_config(config)):
        assert scheduler.max_num_seqs == 1 and not scheduler.dynamic_split_fuse
        assert not scheduler.enable_prefix_caching


@pytest.mark.parametrize("pipeline", ["VLM", "VLM_CB", "OMNI"])
def test_a_vision_or_omni_pipeline_is_a_load_error(tmp_path: Path, pipeline: str) -> None:
    (problem,) = llm_options.problems(parse(f'models_path: "m", pipeline_type: {pipeline}'),
                                      tmp_path)
    assert problem.startswith(f"pipeline_type {pipeline}: ovserve serves text-only LLMs")


@pytest.mark.parametrize("pipeline", ["LM", "LM_CB", "AUTO"])
def test_text_pipelines_run(tmp_path: Path, pipeline: str) -> None:
    model_folder(tmp_path / "m")
    assert llm_options.problems(parse(f'models_path: "m", pipeline_type: {pipeline}'),
                                tmp_path) == []


def test_a_vision_language_model_folder_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "vlm"
    folder.mkdir()
    (folder / "openvino_text_embeddings_model.xml").write_text("")
    (folder / "openvino_vision_embeddings_model.bin").write_text("")
    (problem,) = llm_options.problems(parse('models_path: "vlm"'), tmp_path)
    assert problem.startswith(f"models_path {folder} holds a vision-language model")


@pytest.mark.parametrize(("text", "expected"), [
    ('block_size: 16', "block_size 16: openvino-genai fixes the KV cache block size on CPU at "
                       "32 tokens"),
    ('draft_cache_size: 2', "draft_cache_size is set but draft_models_path is not"),
    ('draft_eagle3_mode: true', "draft_eagle3_mode is set but draft_models_path is not"),
    ('draft_models_path: "nowhere"', "draft_models_path {base}/nowhere holds no "
                                     "openvino_model.xml"),
    ('draft_models_path: "draft", draft_block_size: 64', "draft_block_size 64"),
    ('cache_eviction_config: { start_size: 32, max_cache_size: 672 }',
     "cache_eviction_config.recent_size is required"),
    ('draft_models_path: "draft", cache_eviction_config: { start_size: 32, recent_size: 128, '
     'max_cache_size: 672 }', "cache_eviction_config with draft_models_path: openvino-genai "
                              "2026.4.1 fails every generation step"),
    ('tool_parser: "bogus"', "tool_parser 'bogus' is not one of OVMS's: llama3, hermes3"),
    ('reasoning_parser: "bogus"', "reasoning_parser 'bogus' is not one of OVMS's: qwen3"),
])
def test_fields_that_cannot_be_honoured_are_load_errors_naming_them(
        tmp_path: Path, text: str, expected: str) -> None:
    model_folder(tmp_path / "m")
    model_folder(tmp_path / "draft")
    found = llm_options.problems(parse(f'models_path: "m", {text}'), tmp_path)
    assert len(found) == 1 and found[0].startswith(expected.format(base=tmp_path)), found


def test_the_block_size_openvino_genai_uses_is_accepted(tmp_path: Path) -> None:
    model_folder(tmp_path / "m")
    model_folder(tmp_path / "draft")
    assert llm_options.problems(parse(
        'models_path: "m", block_size: 32, draft_models_path: "draft", draft_block_size: 32'),
        tmp_path) == []


class Factory:
    def __init__(self) -> None:
        self.made: list[EngineConfig] = []

    def __call__(self, config: EngineConfig) -> FakeEngine:
        self.made.append(config)
        return FakeEngine(config.models_path.name)


def exported(root: Path, fixture: str, name: str, edit: tuple[str, str] | None = None
             ) -> GraphEntry:
    """An exported fixture graph in a model folder of its own (with its draft sub-folder)."""
    folder = model_folder(root / name)
    model_folder(folder / "HuggingFaceTB-SmolLM2-135M-Instruct")
    text = (FIXTURES / fixture / "graph.pbtxt").read_text()
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    (folder / "graph.pbtxt").write_text(text)
    return GraphEntry(name=name, base_path=folder, graph_path=folder / "graph.pbtxt")


async def test_exported_graphs_reach_the_engine_and_report_what_they_keep(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    factory = Factory()
    registry = Registry(BUILTIN_CALCULATORS, EngineRegistry(factory))
    caplog.set_level(logging.INFO)
    await registry.load([
        exported(tmp_path, "default", "default"),
        exported(tmp_path, "draft_parsers", "draft"),
        exported(tmp_path, "parsers_eviction", "evict"),
        exported(tmp_path, "default", "vlm", ('device: "CPU",',
                                              'device: "CPU", pipeline_type: VLM_CB,')),
    ])
    assert "pipeline_type VLM_CB: ovserve serves text-only LLMs" in (
        registry.states["vlm"].error or "")
    default, draft, evict = factory.made
    assert default.dynamic_cache and default.draft is None and default.cache_eviction is None
    assert draft.draft == DraftModel(tmp_path / "draft" / "HuggingFaceTB-SmolLM2-135M-Instruct",
                                     device="CPU")
    assert evict.cache_eviction == CacheEviction(32, 128, 672, kv_crush=(8, "RANDOM", 42))
    # the chat layer acts on the parsers: no "not acted on" warning
    assert not [r for r in caplog.records if r.levelno == logging.WARNING
                and "not acted on" in r.getMessage()]
    servable = registry.states["draft"].servable
    assert isinstance(servable, Servable)
    node = servable.calculators["LLMExecutor"]
    assert isinstance(node, LLMCalculator)
    assert node.agent_options == {"tool_parser": "hermes3", "reasoning_parser": "qwen3",
                                  "enable_tool_guided_generation": True,
                                  "chat_template_mode": None}
    await registry.unload()


def test_two_graphs_with_different_draft_models_conflict(tmp_path: Path) -> None:
    model = model_folder(tmp_path / "model")
    engines = EngineRegistry(Factory())
    first = engines.acquire("a", model, draft=DraftModel(tmp_path / "d1"))
    assert engines.acquire("b", model, draft=DraftModel(tmp_path / "d1")) is first
    with pytest.raises(EngineConflict, match="different draft"):
        engines.acquire("c", model, draft=DraftModel(tmp_path / "d2"))
    with pytest.raises(EngineConflict, match=r"different cache_size_gb: 1\.0 and 0\.0"):
        engines.acquire("d", model, cache_size_gb=1.0)
        engines.acquire("e", model, cache_size_gb=0.0)


async def test_best_of_limit_bounds_the_candidates_a_request_asks_for(tmp_path: Path) -> None:
    """ovserve generates n candidates (best_of = n): n above best_of_limit is a 400."""
    from typing import Any, cast

    from ovserve.graph.calculator import Packet, RunContext
    from ovserve.nodes.llm import _LLMRun
    from ovserve.protocol.generation import GenerationRequest

    registry = Registry(BUILTIN_CALCULATORS, EngineRegistry(Factory()))
    await registry.load([exported(tmp_path, "default", "limited", (
        'device: "CPU",', 'device: "CPU", best_of_limit: 2,'))])
    servable = registry.states["limited"].servable
    assert isinstance(servable, Servable)
    node = servable.calculators["LLMExecutor"]
    assert isinstance(node, LLMCalculator)
    run = _LLMRun(node, cast(RunContext, cast(Any, None)))  # refused before it emits
    request = GenerationRequest(kind="completion", prompt="hi", n=3)
    with pytest.raises(InvalidInput, match=r"n: at most 2 \(the graph's best_of_limit\)"):
        await run.process(0, {node.request_port: Packet(0, request)})
    await registry.unload()


def test_ovserve_parses_every_parser_name_ovms_takes() -> None:
    """A graph's tool_parser / reasoning_parser is checked against OVMS's names only: each
    must have a parser in ovserve.chat (so no OVMS graph loads into an unparsed format)."""
    from ovserve.chat.parsers import REASONING_NAMES, TOOL_PARSERS

    assert set(llm_options.TOOL_PARSERS) <= set(TOOL_PARSERS)
    assert set(llm_options.REASONING_PARSERS) <= set(REASONING_NAMES)
