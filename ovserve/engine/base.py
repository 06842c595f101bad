"""The engine interface: submit a generation, read its output as it is produced, abort it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ovserve.protocol.generation import SamplingParams

__all__ = ["Delta", "EngineStats", "SamplingParams"]


@dataclass
class Delta:
    """New output of one request since the last delta."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "stop", "length" or "abort" on the last delta


@dataclass(frozen=True)
class EngineStats:
    model: str
    active_requests: int
    total_requests: int
    aborted_requests: int
    generated_tokens: int
    kv_cache_usage: float
