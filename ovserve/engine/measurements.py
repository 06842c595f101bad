"""What an LLM engine measures of its requests, kept once and read at scrape time.

Every engine (``engine.requests.EngineBase``) adds to one ``EngineMeasurements`` as requests
arrive, are scheduled, produce tokens and finish; the metrics views (ovserve's own names,
vLLM's) are rendered from a snapshot of it. Times are ``time.monotonic()`` seconds, taken in the
engine process for the engine's own events (the step a request was first scheduled in, each
step's end) and in this process for arrival and the end of a request.

``Distribution`` keeps counts under fixed upper bounds; its bounds are the union of every
view's buckets, so each view reads exact cumulative counts at its own bounds.
"""

from __future__ import annotations

import bisect
import copy
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["TIME_BOUNDS", "TOKEN_BOUNDS", "Distribution", "EngineMeasurements", "Exemplar",
           "FinishedRequest", "ModelTimings"]

#: vLLM's time-to-first-token buckets
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
#: vLLM's inter-token-latency (and time-per-output-token) buckets
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)
#: vLLM's request latency buckets (e2e, queue, prefill, decode, inference)
REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
#: ovserve's own latency buckets
OVSERVE_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120)
TIME_BOUNDS = tuple(sorted({*TTFT_BUCKETS, *ITL_BUCKETS, *REQUEST_BUCKETS, *OVSERVE_BUCKETS}))
#: OVMS's histogram buckets in microseconds: floor(10 * 1.8^i), i < 33
OVMS_BOUNDS_US = tuple(float(int(10 * 1.8 ** i)) for i in range(33))
#: every view's time bounds in seconds (OVMS's too): what request times are kept at
ALL_TIME_BOUNDS = tuple(sorted({*TIME_BOUNDS, *(b / 1e6 for b in OVMS_BOUNDS_US)}))


def one_two_five(limit: int) -> tuple[int, ...]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... up to ``limit``."""
    bounds: list[int] = []
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * scale > limit:
                return tuple(bounds)
            bounds.append(mantissa * scale)
        scale *= 10


TOKEN_BOUNDS = one_two_five(10**7)


class Distribution:
    """Observations counted under fixed upper bounds (the last slot: above them all), each
    slot keeping the latest observation that came with exemplar labels."""

    __slots__ = ("bounds", "count", "counts", "exemplars", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.total = 0.0
        #: per slot, the latest exemplar (None until one is observed anywhere)
        self.exemplars: list[Exemplar | None] | None = None

    def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Count ``value``; ``exemplar``: the labels of what it measured (a request's ids)."""
        slot = bisect.bisect_left(self.bounds, value)
        self.counts[slot] += 1
        self.count += 1
        self.total += value
        if exemplar:
            if self.exemplars is None:
                self.exemplars = [None] * len(self.counts)
            self.exemplars[slot] = Exemplar(dict(exemplar), value, time.time())

    def merge(self, other: Distribution) -> None:
        """Add ``other``'s observations (same bounds); each slot keeps the later exemplar."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total += other.total
        if other.exemplars is not None:
            mine = self.exemplars or [None] * len(self.counts)
            self.exemplars = [_later(a, b) for a, b in zip(mine, other.exemplars, strict=True)]

    def buckets(self, bounds: Iterable[float]) -> list[tuple[float, int]]:
        """Cumulative counts at ``bounds`` (each one of this distribution's bounds), then at
        +Inf: what a Prometheus histogram with those buckets would hold."""
        return [(bound, count) for bound, count, _ in self.buckets_with_exemplars(bounds)]

    def buckets_with_exemplars(self, bounds: Iterable[float]
                               ) -> list[tuple[float, int, Exemplar | None]]:
        """``buckets`` with each bucket's latest exemplar: of the observations above the
        previous bound and up to this one."""
        result: list[tuple[float, int, Exemplar | None]] = []
        cumulative, index = 0, 0
        slots = self.exemplars or [None] * len(self.counts)
        for bound in bounds:
            latest: Exemplar | None = None
            while index < len(self.bounds) and self.bounds[index] <= bound:
                cumulative += self.counts[index]
                latest = _later(latest, slots[index])
                index += 1
            if index == 0 or self.bounds[index - 1] != bound:
                raise ValueError(f"{bound} is not a bound of this distribution")
            result.append((bound, cumulative, latest))
        rest: Exemplar | None = None
        for slot in slots[index:]:
            rest = _later(rest, slot)
        result.append((float("inf"), self.count, rest))
        return result


@dataclass(frozen=True, slots=True)
class Exemplar:
    """One observation's labels, value and when it was made (Unix seconds)."""

    labels: dict[str, str]
    value: float
    timestamp: float


def _later(a: Exemplar | None, b: Exemplar | None) -> Exemplar | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.timestamp >= a.timestamp else a


@dataclass(frozen=True, slots=True)
class FinishedRequest:
    """One request's life in the engine (monotonic seconds; None: it never got there)."""

    arrived: float
    scheduled: float | None
    first_token: float | None
    last_token: float | None
    finished: float
    prompt_tokens: int
    generation_tokens: int
    max_tokens: int
    finish_reason: str  # "stop", "length", "abort"
    #: the request's exemplar labels (``engine.exemplars``), on each of its observations
    exemplar: Mapping[str, str] | None = None


def _time() -> Distribution:
    return Distribution(TIME_BOUNDS)


def _tokens() -> Distribution:
    return Distribution(TOKEN_BOUNDS)


@dataclass
class EngineMeasurements:
    """One engine's counters and distributions. ``snapshot()`` for a consistent copy."""

    #: prompt tokens of requests whose prefill finished (their first token came)
    prompt_tokens: int = 0
    generation_tokens: int = 0
    #: requests ended by finish reason ("stop", "length", "abort")
    finished: dict[str, int] = field(default_factory=dict)
    time_to_first_token: Distribution = field(default_factory=_time)
    #: one observation per request per step after its first token: the time since its
    #: previous token(s) arrived
    inter_token_latency: Distribution = field(default_factory=_time)
    #: per request: decode time / (generated tokens - 1)
    time_per_output_token: Distribution = field(default_factory=_time)
    e2e: Distribution = field(default_factory=_time)
    queue: Distribution = field(default_factory=_time)
    prefill: Distribution = field(default_factory=_time)
    decode: Distribution = field(default_factory=_time)
    inference: Distribution = field(default_factory=_time)
    request_prompt_tokens: Distribution = field(default_factory=_tokens)
    request_generation_tokens: Distribution = field(default_factory=_tokens)
    request_max_tokens: Distribution = field(default_factory=_tokens)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def first_token(self, arrived: float, at: float, prompt_tokens: int,
                    exemplar: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.time_to_first_token.observe(max(at - arrived, 0.0), exemplar)

    def tokens(self, count: int, since_previous: float | None,
               exemplar: Mapping[str, str] | None = None) -> None:
        """``count`` tokens of one request arrived; ``since_previous``: the time since its
        previous tokens (None for its first)."""
        with self._lock:
            self.generation_tokens += count
            if since_previous is not None:
                self.inter_token_latency.observe(max(since_previous, 0.0), exemplar)

    def finish(self, request: FinishedRequest) -> None:
        """A request ended. Aborted ones count by reason only (their times say nothing)."""
        with self._lock:
            reason = request.finish_reason
            self.finished[reason] = self.finished.get(reason, 0) + 1
            if reason == "abort":
                return
            tag = request.exemplar
            self.e2e.observe(max(request.finished - request.arrived, 0.0), tag)
            self.request_prompt_tokens.observe(request.prompt_tokens, tag)
            self.request_generation_tokens.observe(request.generation_tokens, tag)
            self.request_max_tokens.observe(request.max_tokens, tag)
            scheduled = request.scheduled if request.scheduled is not None else request.finished
            self.queue.observe(max(scheduled - request.arrived, 0.0), tag)
            first = request.first_token if request.first_token is not None else scheduled
            last = request.last_token if request.last_token is not None else first
            self.prefill.observe(max(first - scheduled, 0.0), tag)
            self.decode.observe(max(last - first, 0.0), tag)
            self.inference.observe(max(last - scheduled, 0.0), tag)
            if request.generation_tokens > 1:
                self.time_per_output_token.observe(
                    max(last - first, 0.0) / (request.generation_tokens - 1), tag)

    def snapshot(self) -> EngineMeasurements:
        with self._lock:
            copied = copy.deepcopy({k: v for k, v in vars(self).items() if k != "_lock"})
        return EngineMeasurements(**copied)


class ModelTimings:
    """A plain model's infer requests: the wait for a free one, inference on it, and how many
    are in use now (OVMS's wait_for_infer_req_time, inference_time, infer_req_active)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wait = Distribution(ALL_TIME_BOUNDS)
        self.inference = Distribution(ALL_TIME_BOUNDS)
        self.active = 0

    def acquired(self, waited: float) -> None:
        with self._lock:
            self.wait.observe(waited)
            self.active += 1

    def released(self, inferred: float | None) -> None:
        """An infer request went back to the pool; ``inferred``: its inference time (None: it
        did not run)."""
        with self._lock:
            self.active -= 1
            if inferred is not None:
                self.inference.observe(inferred)

    def snapshot(self) -> tuple[Distribution, Distribution, int]:
        with self._lock:
            return copy.deepcopy(self.wait), copy.deepcopy(self.inference), self.active
