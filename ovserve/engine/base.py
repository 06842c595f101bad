"""The plain types engines take and give: their configuration, a prepared request, a delta of
output, their stats. The interface itself is ``engine.interface.Engine``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovserve.protocol.generation import SamplingParams

__all__ = ["Delta", "EngineConfig", "EngineStats", "Prepared", "SamplingParams"]


@dataclass(frozen=True)
class EngineConfig:
    """How an engine is built. Two users of one model must agree on it (see the registry)."""

    models_path: Path
    device: str = "CPU"
    plugin_config: Mapping[str, Any] = field(default_factory=dict)
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    cache_size_gb: float = 1.0
    enable_prefix_caching: bool = True
    #: Laid over the model's generation_config.json (the server's --override_generation_config)
    generation_overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Delta:
    """New output of one request since the last delta."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "stop", "length" or "abort" on the last delta


@dataclass(frozen=True)
class Prepared:
    """A request ready for the engine: its prompt's token ids and GenerationConfig fields."""

    token_ids: list[int]
    fields: dict[str, Any]

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
