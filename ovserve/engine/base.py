"""The engine interface: submit a generation, read its output as it is produced, abort it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling. ``None`` leaves the model's generation_config default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    apply_chat_template: bool = True


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
