"""The plain types engines take and give: their configuration, a prepared request, a delta of
output, their stats. The interface itself is ``engine.interface.Engine``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovserve.engine.measurements import EngineMeasurements
from ovserve.protocol.generation import SamplingParams

__all__ = ["CacheEviction", "Delta", "DraftModel", "EngineConfig", "EngineStats", "LoraOptions",
           "Prepared", "SamplingParams", "SparseAttention"]


@dataclass(frozen=True)
class LoraOptions:
    """Where an engine's LoRA adapters come from and how many it keeps (vLLM's and NIM's
    knobs). Adapters are folders in PEFT format; the folder name is the model id."""

    dirs: tuple[Path, ...] = ()
    #: adapters by name (vLLM's --lora-modules), loaded at start
    modules: tuple[tuple[str, Path], ...] = ()
    #: re-scan ``dirs`` this often (NIM_PEFT_REFRESH_INTERVAL); 0: at start and on a miss
    refresh_seconds: float = 0.0
    #: adapters runnable in one batch (slots in the engine), least recently used evicted
    max_loras: int = 8
    #: adapters whose weights stay in server memory
    max_cpu_loras: int = 32
    max_lora_rank: int = 64


@dataclass(frozen=True)
class CacheEviction:
    """KV-cache eviction (openvino-genai's ``CacheEvictionConfig``; OVMS's
    ``cache_eviction_config``): each sequence keeps at most ``max_cache_size`` tokens' KV,
    the first ``start_size`` and last ``recent_size`` always, the rest by importance."""

    start_size: int
    recent_size: int
    max_cache_size: int
    aggregation_mode: str = "NORM_SUM"  # an ``openvino_genai.AggregationMode`` name
    apply_rotation: bool = False
    snapkv_window_size: int = 8
    #: KVCrush: (budget, anchor point mode name, rng seed); None: not used
    kv_crush: tuple[int, str, int] | None = None


@dataclass(frozen=True)
class SparseAttention:
    """Sparse attention in prefill (openvino-genai's ``SparseAttentionConfig``)."""

    mode: str = "TRISHAPE"  # an ``openvino_genai.SparseAttentionMode`` name
    #: the ``SparseAttentionConfig`` fields a graph set, by name; the others keep genai's defaults
    settings: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class DraftModel:
    """Speculative decoding with a draft model (OVMS's ``draft_*`` fields). ``None`` fields
    take the main model's settings."""

    models_path: Path
    device: str = ""  # empty: the main model's device
    max_num_batched_tokens: int | None = None
    cache_size_gb: float | None = None  # 0: allocated dynamically
    max_num_seqs: int | None = None
    dynamic_split_fuse: bool | None = None
    #: an EAGLE3 draft: requests are greedy (as OVMS enforces)
    eagle3: bool = False


@dataclass(frozen=True)
class EngineConfig:
    """How an engine is built. Two users of one model must agree on it (see the registry)."""

    models_path: Path
    device: str = "CPU"
    plugin_config: Mapping[str, Any] = field(default_factory=dict)
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    #: KV cache in GB; 0: allocated dynamically, growing as requests need it (OVMS's default)
    cache_size_gb: float = 1.0
    enable_prefix_caching: bool = True
    dynamic_split_fuse: bool = True
    cache_eviction: CacheEviction | None = None
    sparse_attention: SparseAttention | None = None
    #: linear-attention checkpoint interval in KV blocks (None: openvino-genai's adaptive one)
    cache_interval_multiplier: int | None = None
    #: None: no speculative decoding with a draft model
    draft: DraftModel | None = None
    #: reproducible output whatever else runs (``engine.determinism``), at a cost in speed
    deterministic: bool = False
    #: Laid over the model's generation_config.json (the server's --override_generation_config)
    generation_overrides: Mapping[str, Any] = field(default_factory=dict)
    #: None: no adapters (the model runs unmodified)
    lora: LoraOptions | None = None
    #: the server's --chat_template: the model's chat template instead of its own
    chat_template: str | None = None
    #: requests may bring their own chat template (--trust_request_chat_template)
    trust_request_chat_template: bool = False

    @property
    def prompt_lookup(self) -> bool:
        """Prompt lookup decoding, asked for as OVMS does: ``"prompt_lookup": true`` in the
        plugin_config (openvino-genai reads it when it builds the pipeline)."""
        return self.plugin_config.get("prompt_lookup") is True

    @property
    def dynamic_cache(self) -> bool:
        """The KV cache grows as needed instead of being allocated at load (cache_size 0)."""
        return self.cache_size_gb == 0


@dataclass(slots=True)
class Delta:
    """New output of one request since the last delta."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "stop", "length" or "abort" on the last delta
    logprobs: list[float] = field(default_factory=list)  # of token_ids, when asked for


@dataclass(frozen=True)
class Prepared:
    """A request ready for the engine: its prompt's token ids and GenerationConfig fields."""

    token_ids: list[int]
    fields: dict[str, Any]
    adapter: str | None = None  # a LoRA adapter's name; None: the base model
    keep_special: bool = False  # the text keeps special tokens (but not the final stop token)

    @property
    def prompt_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def max_new_tokens(self) -> int:
        return int(self.fields["max_new_tokens"])


@dataclass(frozen=True)
class EngineStats:
    model: str
    active_requests: int
    total_requests: int
    aborted_requests: int
    failed_requests: int
    generated_tokens: int
    kv_cache_usage: float
    restarts: int
    ready: bool
    #: of the active requests: those the engine has scheduled (in its batch), the others
    running_requests: int = 0
    waiting_requests: int = 0
    #: LoRA adapters of the running / waiting requests, and the engine's adapter slots
    running_adapters: tuple[str, ...] = ()
    waiting_adapters: tuple[str, ...] = ()
    max_loras: int = 0
    context_length: int = 0
    #: a copy of the engine's request measurements (``engine.measurements``)
    measurements: EngineMeasurements | None = None
