"""The engine interface every layer above uses: prepare a request, submit it, read its typed
output as it is produced (the stream raises an ``EngineError`` subclass on failure), abort it,
close the engine, read its stats.

``OpenVINOEngine`` (``engine.client``) is the real engine; ``FakeEngine`` (``engine.fake``) is a
deterministic stand-in for fast tests of nodes, serving and transports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ovserve.protocol.generation import SamplingParams

if TYPE_CHECKING:
    from ovserve.engine.limits import GenerationLimits, Prompt
    from ovserve.engine.requests import Batch, Generation

__all__ = ["Delta", "Engine", "EngineConfig", "EngineStats", "Prepared", "SamplingParams"]


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


class Engine(Protocol):
    """What nodes, handlers and transports may rely on. Thread-safe: ``submit`` and
    ``submit_batch`` from any thread, ``submit_async`` from an event loop."""

    name: str
    context_length: int

    @property
    def ready(self) -> bool:
        """False while the engine cannot take requests (restarting, closed)."""

    def prepare(self, prompt: Prompt, params: SamplingParams,
                limits: GenerationLimits | None = None) -> Prepared:
        """Apply the chat template, tokenize, decide limits, check everything (raises
        ``InvalidInput``): the one place where a request's generation settings are decided."""

    def submit(self, prepared: Prepared) -> Generation:
        """Queue a request for blocking reading (``Generation.deltas()``)."""

    def submit_batch(self, prepared: list[Prepared]) -> Batch:
        """Queue several requests read as one stream of updates (``Batch.updates()``)."""

    def submit_async(self, prepared: Prepared, n: int = 1) -> list[Generation]:
        """Queue ``n`` generations of one request for ``Generation.adeltas()``."""

    def stats(self) -> EngineStats: ...

    def close(self) -> None: ...
