"""The engine requests one API request made, seen from the transport: for per-request timings
in the response (``timings``) and the trace's engine spans.

``observing()`` opens an ``engine.scope`` call scope around the request's work; every engine
request made in it (by an LLM node's task, which inherits the context) is recorded there. A
Python handler's own engine requests run in the handler's scope, not this one. The times are the
engine's own (``time.monotonic()``, set as its steps are delivered: arrival, the step that
first scheduled the request, its first and last token)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ovserve.engine.scope import CallScope, within

__all__ = ["EngineRequest", "Observed", "current", "llama_timings", "observing"]


@dataclass(frozen=True)
class EngineRequest:
    """One engine request's life (monotonic seconds; None: it did not get there)."""

    arrived: float
    scheduled: float | None
    first_token: float | None
    last_token: float | None
    prompt_tokens: int
    generated_tokens: int
    #: what ``Observed``'s ``parent`` said when the request was made (its trace span)
    parent: Any = None
    engine: str = ""


class Observed(CallScope):
    """A call scope that keeps the engine requests made in it (and is never cancelled).
    ``parent``: called as each request is made (in the maker's context), kept beside it."""

    def __init__(self, parent: Callable[[], Any] | None = None) -> None:
        super().__init__()
        self.parent = parent
        self.generations: list[tuple[Any, Any]] = []

    def add(self, request: Any) -> None:
        self.generations.append((request, self.parent() if self.parent else None))
        super().add(request)

    def requests(self) -> list[EngineRequest]:
        out: list[EngineRequest] = []
        for generation, parent in self.generations:
            request = getattr(generation, "request", None)
            if request is None:
                continue
            engine = getattr(getattr(generation, "engine", None), "name", "")
            out.append(EngineRequest(request.arrived, request.scheduled, request.first_token,
                                     request.last_token, request.prompt_tokens,
                                     len(request.token_ids), parent, engine))
        return out


_observed: ContextVar[Observed | None] = ContextVar("ovserve_observed", default=None)


def current() -> Observed | None:
    """The scope observing the request served in this context, if any."""
    return _observed.get()


@contextmanager
def observing(scope: Observed | None) -> Iterator[Observed | None]:
    """Engine requests made in the block (and in tasks it starts) are recorded in ``scope``
    (None: nothing is, and nothing is done)."""
    if scope is None:
        yield None
        return
    token = _observed.set(scope)
    try:
        with within(scope):
            yield scope
    finally:
        _observed.reset(token)


def llama_timings(requests: list[EngineRequest]) -> dict[str, Any] | None:
    """llama.cpp's ``timings`` object over a request's engine requests: prompt processing
    (prefill: scheduled to first token) and generation (first to last token), in ms, per token
    and per second. ``prompt_n`` counts each prompt once; ``predicted_n`` every token
    generated. None when no engine request ran."""
    ran = [r for r in requests if r.first_token is not None]
    if not ran:
        return None
    prompt_n = sum(r.prompt_tokens for r in ran)
    prompt_ms = 1000 * max((r.first_token or 0) - (r.scheduled if r.scheduled is not None
                                                     else r.arrived) for r in ran)
    predicted_n = sum(r.generated_tokens for r in ran)
    first = min(r.first_token for r in ran if r.first_token is not None)
    last = max(r.last_token if r.last_token is not None else first for r in ran)
    predicted_ms = 1000 * max(last - first, 0.0)
    decoded = max(predicted_n - len(ran), 0)  # tokens after each request's first
    return {
        "prompt_n": prompt_n,
        "prompt_ms": round(max(prompt_ms, 0.0), 3),
        "prompt_per_token_ms": round(prompt_ms / prompt_n, 3) if prompt_n else 0.0,
        "prompt_per_second": round(1000 * prompt_n / prompt_ms, 3) if prompt_ms > 0 else 0.0,
        "predicted_n": predicted_n,
        "predicted_ms": round(predicted_ms, 3),
        "predicted_per_token_ms": round(predicted_ms / decoded, 3) if decoded else 0.0,
        "predicted_per_second": round(1000 * decoded / predicted_ms, 3)
        if predicted_ms > 0 else 0.0,
        # ovserve's own: the time waiting for an engine slot
        "queue_ms": round(1000 * max(max((r.scheduled or r.arrived) - r.arrived
                                          for r in ran), 0.0), 3),
    }


def monotonic_clock() -> Callable[[float], int]:
    """A function turning ``time.monotonic()`` instants into Unix nanoseconds (for spans),
    with one offset between the two clocks, so the order of instants is kept."""
    offset = time.time_ns() - int(time.monotonic() * 1e9)

    def unix_ns(monotonic: float) -> int:
        return int(monotonic * 1e9) + offset

    return unix_ns
