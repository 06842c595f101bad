"""Typed messages between the serving process (``engine.client``) and the engine process
(``engine.process``), sent over a socket pair with ``multiprocessing.connection``.

    server -> engine   Start, then any of Add | Abort | Close
    engine -> server   Ready | LoadFailed, then Step after every engine step
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from ovserve.engine.base import EngineConfig
from ovserve.engine.lora_graph import LoraWeights
from ovserve.engine.requests import Output

__all__ = ["Abort", "Add", "Close", "LoadFailed", "Output", "Ready", "Start", "Step"]


@dataclass(frozen=True, slots=True)
class Start:
    config: EngineConfig
    log_level: int
    #: LoRA slots 1..n in order: (adapter name, weights); empty: the model runs unmodified
    adapters: list[tuple[str, LoraWeights]] = field(default_factory=list)
    #: where the LoRA model is built (made and removed by the supervisor, so that an engine
    #: process that is killed leaves nothing behind); None without adapters
    workdir: str | None = None


@dataclass(frozen=True, slots=True)
class Add:
    request_id: int
    token_ids: list[int]
    fields: dict[str, Any]  # GenerationConfig attributes
    keep_special: bool = False  # detokenize with the special tokens (see Prepared)


@dataclass(frozen=True, slots=True)
class Abort:
    request_id: int


@dataclass(frozen=True, slots=True)
class Close:
    pass


@dataclass(frozen=True, slots=True)
class Ready:
    eos_token_id: int
    stop_token_ids: list[int]
    vocab_size: int = 0  # of the base model; slot k's token t is fed as k * vocab_size + t
    slots: dict[str, int] = field(default_factory=dict)  # adapter name -> slot (1..n)


@dataclass(frozen=True, slots=True)
class LoadFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class Step:
    """One engine step's outputs (sent after every step: pickled as plain tuples, see
    ``__reduce__``)."""

    outputs: list[Output]
    cache_usage: float  # fraction of KV-cache blocks in use
    #: when the step ran (time.monotonic(), the same clock in both processes) and the
    #: requests it scheduled for the first time
    started: float = 0.0
    ended: float = 0.0
    scheduled: tuple[int, ...] = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle the outputs as tuples of their fields: a slotted dataclass pickles through
        Python-level ``__getstate__``/``__setstate__`` per object (about 8 us per output each
        way, measured), tuples in C."""
        return _step, ([_output_values(o) for o in self.outputs], self.cache_usage,
                       self.started, self.ended, self.scheduled)


_output_values = attrgetter(*(f.name for f in fields(Output)))


def _step(outputs: list[tuple[Any, ...]], cache_usage: float, started: float, ended: float,
          scheduled: tuple[int, ...]) -> Step:
    return Step([Output(*values) for values in outputs], cache_usage, started, ended,
                scheduled)
