"""What the LLM node does with each field of OVMS 2026's ``LLMCalculatorOptions``.

Every field parses (``graph/proto/llm_calculator.proto``). A field is either acted on (it
reaches the engine's ``EngineConfig`` as OVMS's servable initializer passes it to
openvino-genai: src/llm/language_model/continuous_batching/servable_initializer.cpp), handed
to the chat layer (``AGENT_FIELDS``: the tool call and reasoning parsers, tool guided
generation, the chat template mode), or refused at load with an error naming it
(``problems``). None is ignored silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ovserve.engine.base import CacheEviction, DraftModel, LoraOptions, SparseAttention
from ovserve.graph.proto.llm_calculator_pb2 import LLMCalculatorOptions
from ovserve.nodes.options import model_problems, resolve

Options = LLMCalculatorOptions

#: Handed to the chat layer (tool calls and reasoning).
AGENT_FIELDS = ("tool_parser", "reasoning_parser", "enable_tool_guided_generation",
                "chat_template_mode")
#: OVMS's parser names (src/llm/io_processing/parser_config_validation.cpp); "none" disables.
TOOL_PARSERS = ("llama3", "hermes3", "phi4", "mistral", "gptoss", "qwen3coder", "devstral",
                "lfm2", "gemma4", "onyx", "minicpm5")
REASONING_PARSERS = ("qwen3", "gemma4", "gptoss", "onyx", "minicpm5", "lfm2")
PARSER_DISABLED = "none"
#: Pipeline kinds ovserve's engine runs (text-only continuous batching; OVMS runs LM as an
#: LLMPipeline, which serves the same requests).
RUNNABLE_PIPELINES = frozenset({Options.LM, Options.LM_CB, Options.AUTO})
DRAFT_SETTINGS = ("draft_device", "draft_max_num_batched_tokens", "draft_cache_size",
                  "draft_block_size", "draft_max_num_seqs", "draft_dynamic_split_fuse",
                  "draft_eagle3_mode")


def pipeline_name(value: int) -> str:
    return Options.PipelineType.Name(value)


def kv_block_size(device: str, xattention: bool = False) -> int:
    """The KV-cache block size openvino-genai uses on ``device`` (it cannot be chosen)."""
    if device.upper().startswith("GPU"):
        return 256 if xattention else 16
    return 32


def _xattention(options: Options) -> bool:
    return (options.HasField("sparse_attention_config")
            and options.sparse_attention_config.mode == Options.SparseAttentionConfig.XATTENTION)


def _is_vlm_folder(path: Path) -> bool:
    """OVMS's test for a vision-language model folder (determinePipelineType)."""
    return ((path / "openvino_text_embeddings_model.xml").is_file()
            and (path / "openvino_vision_embeddings_model.bin").is_file())


def problems(options: Options, base_path: Path) -> list[str]:
    """The fields ovserve cannot honour, each named with why (load errors)."""
    found: list[str] = []
    if options.pipeline_type not in RUNNABLE_PIPELINES:
        found.append(
            f"pipeline_type {pipeline_name(options.pipeline_type)}: ovserve serves text-only "
            "LLMs with continuous batching (pipeline_type LM, LM_CB or AUTO); vision-language "
            "and omni pipelines are not available")
    elif options.models_path and _is_vlm_folder(resolve(options.models_path, base_path)):
        found.append(f"models_path {resolve(options.models_path, base_path)} holds a "
                     "vision-language model (OVMS would run it as pipeline_type VLM_CB); "
                     "ovserve serves text-only LLMs")
    device = options.device if options.HasField("device") and options.device else "CPU"
    for field, device_of in (("block_size", device),
                             ("draft_block_size", options.draft_device or device)):
        if options.HasField(field):
            fixed = kv_block_size(device_of, _xattention(options))
            if getattr(options, field) != fixed:
                found.append(f"{field} {getattr(options, field)}: openvino-genai fixes the KV "
                             f"cache block size on {device_of.upper()} at {fixed} tokens; "
                             "remove the field")
    if options.draft_models_path:
        found += model_problems("draft_models_path",
                                resolve(options.draft_models_path, base_path),
                                "scripts/download_model.py")
    else:
        found += [f"{name} is set but draft_models_path is not (the draft_* fields configure "
                  "speculative decoding's draft model)"
                  for name in DRAFT_SETTINGS if options.HasField(name)]
    if options.HasField("cache_eviction_config") and options.draft_models_path:
        found.append("cache_eviction_config with draft_models_path: openvino-genai 2026.4.1 "
                     "fails every generation step of a speculative decoding pipeline with "
                     "cache eviction (measured: 'Port for tensor name block_indices was not "
                     "found'); set one of them")
    if options.HasField("cache_eviction_config"):
        eviction = options.cache_eviction_config
        found += [f"cache_eviction_config.{name} is required"
                  for name in ("start_size", "recent_size", "max_cache_size")
                  if not eviction.HasField(name)]
    for field, names in (("tool_parser", TOOL_PARSERS), ("reasoning_parser", REASONING_PARSERS)):
        value = getattr(options, field)
        if value and value != PARSER_DISABLED and value not in names:
            found.append(f"{field} {value!r} is not one of OVMS's: {', '.join(names)} "
                         f"(or {PARSER_DISABLED!r})")
    return found


def agent_options(options: Options) -> dict[str, Any]:
    """The agent fields as the chat layer reads them (unset: None)."""
    return {
        "tool_parser": options.tool_parser or None,
        "reasoning_parser": options.reasoning_parser or None,
        "enable_tool_guided_generation": options.enable_tool_guided_generation,
        "chat_template_mode": (Options.ChatTemplateMode.Name(options.chat_template_mode)
                               if options.HasField("chat_template_mode") else None),
    }


def engine_fields(options: Options, base_path: Path) -> dict[str, Any]:
    """The ``EngineConfig`` fields this graph sets (those it leaves out are not compared
    with other graphs using the same model)."""
    given: dict[str, Any] = {
        name: getattr(options, name) for name in (
            "max_num_seqs", "max_num_batched_tokens", "enable_prefix_caching",
            "dynamic_split_fuse", "deterministic", "cache_interval_multiplier")
        if options.HasField(name)}
    if options.HasField("device") and options.device:
        given["device"] = options.device
    if options.HasField("plugin_config"):
        given["plugin_config"] = json.loads(options.plugin_config or "{}")
    if options.HasField("cache_size"):
        given["cache_size_gb"] = float(options.cache_size)  # 0: dynamic
    if options.HasField("cache_eviction_config"):
        given["cache_eviction"] = cache_eviction(options.cache_eviction_config)
    if options.HasField("sparse_attention_config"):
        given["sparse_attention"] = sparse_attention(options.sparse_attention_config)
    if options.draft_models_path:
        given["draft"] = draft_model(options, base_path)
    if options.HasField("lora_dir"):
        given["lora"] = LoraOptions(
            dirs=(resolve(options.lora_dir, base_path),),
            refresh_seconds=options.lora_refresh_interval, max_loras=options.max_loras,
            max_cpu_loras=options.max_cpu_loras, max_lora_rank=options.max_lora_rank)
    return given


def cache_eviction(config: Options.CacheEvictionConfig) -> CacheEviction:
    kv_crush = None
    if config.HasField("kv_crush_config"):
        crush = config.kv_crush_config
        kv_crush = (crush.budget, Options.KVCrushConfig.AnchorPointMode.Name(
            crush.anchor_point_mode), crush.rng_seed)
    return CacheEviction(
        start_size=config.start_size, recent_size=config.recent_size,
        max_cache_size=config.max_cache_size,
        aggregation_mode=Options.CacheEvictionConfig.AggregationMode.Name(
            config.aggregation_mode),
        apply_rotation=config.apply_rotation, snapkv_window_size=config.snapkv_window_size,
        kv_crush=kv_crush)


SPARSE_SETTINGS = ("num_last_dense_tokens_in_prefill", "num_retained_start_tokens_in_cache",
                   "num_retained_recent_tokens_in_cache", "xattention_threshold",
                   "xattention_block_size", "xattention_stride")


def sparse_attention(config: Options.SparseAttentionConfig) -> SparseAttention:
    return SparseAttention(
        mode=Options.SparseAttentionConfig.SparseAttentionMode.Name(config.mode),
        settings=tuple((name, getattr(config, name)) for name in SPARSE_SETTINGS
                       if config.HasField(name)))


def draft_model(options: Options, base_path: Path) -> DraftModel:
    """The draft model of speculative decoding; its path resolves against the graph's base
    path as OVMS resolves it against the graph's folder."""
    def given(name: str) -> Any:
        return getattr(options, name) if options.HasField(name) else None

    cache = given("draft_cache_size")
    return DraftModel(
        models_path=resolve(options.draft_models_path, base_path),
        device=options.draft_device,
        max_num_batched_tokens=given("draft_max_num_batched_tokens"),
        cache_size_gb=float(cache) if cache is not None else None,
        max_num_seqs=given("draft_max_num_seqs"),
        dynamic_split_fuse=given("draft_dynamic_split_fuse"),
        eagle3=options.draft_eagle3_mode)
