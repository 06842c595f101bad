"""Requests as the serving process sees them, shared by every engine implementation.

``EngineBase`` keeps the active requests, hands each engine step's output to their readers and
fails them with a typed error; subclasses only start and cancel requests in their engine
(``_start``, ``_cancel``). Readers: ``Generation.deltas()`` (blocking, for handler threads),
``Generation.adeltas()`` (async: one wake-up per event loop per step), ``Batch.updates()``
(several prompts of one handler call). Each raises the request's ``EngineError`` when the
engine fails it; closing any of them early aborts the request in the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from ovserve.engine import exemplars
from ovserve.engine.base import Delta, EngineStats, Prepared
from ovserve.engine.measurements import EngineMeasurements, FinishedRequest
from ovserve.engine.scope import record as record_in_scope
from ovserve.errors import EngineError, EngineFailure, EngineUnavailable

_END = object()  # after a request's last delta


class _Request:
    """Where one request's output goes, its tokens so far and when things happened to it
    (``time.monotonic()``; None: not yet)."""

    __slots__ = ("adapter", "arrived", "exemplar", "first_token", "id", "last_token", "loop",
                 "max_tokens", "prompt_tokens", "scheduled", "sink", "token_ids")

    def __init__(self, request_id: int, sink: Callable[[Any], object],
                 loop: asyncio.AbstractEventLoop | None, prepared: Prepared | None = None
                 ) -> None:
        self.id = request_id
        self.sink = sink  # receives Delta objects, then _END, or an EngineError
        self.loop = loop  # async readers: sink is called on this loop
        self.token_ids: list[int] = []
        self.arrived = time.monotonic()
        self.scheduled: float | None = None  # the start of the first step that ran it
        self.first_token: float | None = None
        self.last_token: float | None = None
        self.prompt_tokens = prepared.prompt_tokens if prepared is not None else 0
        self.max_tokens = int(prepared.fields.get("max_new_tokens", 0)) if prepared else 0
        self.adapter = prepared.adapter if prepared is not None else None
        self.exemplar = exemplars.current()  # the submitting request's ids


@dataclass(frozen=True, slots=True)
class StepTimes:
    """When an engine step ran (monotonic seconds) and the requests it scheduled for the
    first time (those producing tokens in it need not be listed)."""

    started: float
    ended: float
    scheduled: tuple[int, ...] = ()


@dataclass(slots=True)
class Output:
    """One request's output of one engine step."""

    request_id: int
    text: str
    token_ids: list[int]
    finish_reason: str | None = None  # "stop", "length", "abort" when done
    done: bool = False
    error: str | None = None  # the engine failed this request (done)
    logprobs: list[float] = field(default_factory=list)  # of token_ids, when asked for


class Generation:
    """One submitted request. Iterate its deltas; ``abort()`` (or leaving early) cancels it."""

    def __init__(self, engine: EngineBase, prepared: Prepared) -> None:
        self.engine = engine
        self.prompt_tokens = prepared.prompt_tokens
        self.request: _Request | None = None
        self._sync: queue.Queue[Any] | None = None
        self._async: asyncio.Queue[Any] | None = None
        self.finished = False

    @property
    def completion_tokens(self) -> int:
        return len(self.request.token_ids) if self.request else 0

    def abort(self) -> None:
        if self.request is not None and not self.finished:
            self.engine._abort(self.request.id)

    def _take(self, item: Any) -> Delta | None:
        """A Delta, or None at the end; raises the request's error."""
        if item is _END:
            self.finished = True
            return None
        if isinstance(item, BaseException):
            self.finished = True
            raise item
        assert isinstance(item, Delta)
        return item

    def deltas(self) -> Generator[Delta, None, None]:
        """Blocking iterator (for handler threads). Closing it early aborts the request."""
        assert self._sync is not None, "submitted for async reading"
        try:
            while (delta := self._take(self._sync.get())) is not None:
                yield delta
        finally:
            self.abort()

    async def adeltas(self) -> AsyncGenerator[Delta, None]:
        """Async iterator. Cancellation or closing it early aborts the request."""
        assert self._async is not None, "submitted for sync reading"
        try:
            while (delta := self._take(await self._async.get())) is not None:
                yield delta
        finally:
            self.abort()


class Batch:
    """Several requests submitted together; their deltas read as one stream of updates."""

    def __init__(self, generations: list[Generation],
                 updates: queue.Queue[tuple[int, Any]]) -> None:
        self.generations = generations
        self._updates = updates

    @property
    def completion_tokens(self) -> list[int]:
        return [g.completion_tokens for g in self.generations]

    @property
    def prompt_tokens(self) -> list[int]:
        return [g.prompt_tokens for g in self.generations]

    def updates(self) -> Iterator[list[Delta | None]]:
        """Blocking: per update, one entry per prompt (None where it has nothing new).
        Raises the first request's ``EngineError``; closing early aborts every request."""
        open_ = set(range(len(self.generations)))
        try:
            while open_:
                pending: list[Delta | None] = [None] * len(self.generations)
                index, item = self._updates.get()
                while True:
                    delta = self.generations[index]._take(item)
                    if delta is None:
                        open_.discard(index)
                    elif (previous := pending[index]) is None:
                        pending[index] = delta
                    else:  # two deltas of one prompt arrived together
                        pending[index] = Delta(previous.text + delta.text,
                                               previous.token_ids + delta.token_ids,
                                               delta.finish_reason,
                                               previous.logprobs + delta.logprobs)
                    try:
                        index, item = self._updates.get_nowait()
                    except queue.Empty:
                        break
                if any(d is not None for d in pending):
                    yield pending
        finally:
            for generation in self.generations:
                generation.abort()


class EngineBase(ABC):
    """Request bookkeeping and delivery; subclasses run the requests."""

    name: str
    context_length: int

    def __init__(self, name: str) -> None:
        self.name = name
        self._ids = itertools.count()
        self._lock = threading.Lock()  # guards _active and the counters
        self._active: dict[int, _Request] = {}
        self._closed = False
        self.total_requests = 0
        self.aborted_requests = 0
        self.failed_requests = 0
        self.generated_tokens = 0
        self.kv_cache_usage = 0.0
        self.restarts = 0
        self.max_loras = 0  # LoRA adapter slots (engines that serve adapters set it)
        self.measurements = EngineMeasurements()

    # -- what a subclass provides ---------------------------------------------------------

    @abstractmethod
    def _unavailable(self) -> str | None:
        """Why the engine cannot take a request now, or None."""

    @abstractmethod
    def _start(self, request_id: int, prepared: Prepared) -> None:
        """Start a request in the engine (outputs come back through ``_deliver``)."""

    @abstractmethod
    def _cancel(self, request_id: int) -> None:
        """Stop a running request; the engine answers with a done "abort" output."""

    # -- submitting -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return not self._closed and self._unavailable() is None

    def submit(self, prepared: Prepared) -> Generation:
        generation = Generation(self, prepared)
        generation._sync = queue.Queue()
        self._enqueue(generation, prepared, generation._sync.put)
        return generation

    def submit_batch(self, prepared: list[Prepared]) -> Batch:
        updates: queue.Queue[tuple[int, Any]] = queue.Queue()
        generations: list[Generation] = []
        try:
            for index, one in enumerate(prepared):
                generation = Generation(self, one)
                self._enqueue(generation, one, _indexed(updates, index))
                generations.append(generation)
        except BaseException:
            for generation in generations:  # none of the batch runs without its reader
                generation.abort()
            raise
        return Batch(generations, updates)

    def submit_async(self, prepared: Prepared, n: int = 1) -> list[Generation]:
        loop = asyncio.get_running_loop()
        generations: list[Generation] = []
        try:
            for _ in range(n):
                generation = Generation(self, prepared)
                async_queue: asyncio.Queue[Any] = asyncio.Queue()
                generation._async = async_queue
                self._enqueue(generation, prepared, async_queue.put_nowait, loop)
                generations.append(generation)
        except BaseException:
            for generation in generations:
                generation.abort()
            raise
        return generations

    def _enqueue(self, generation: Generation, prepared: Prepared,
                 sink: Callable[[Any], object],
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        request = _Request(next(self._ids), sink, loop, prepared)
        generation.request = request
        with self._lock:
            reason = "shut down" if self._closed else self._unavailable()
            if reason is not None:
                raise EngineUnavailable(f"engine {self.name} is not running: {reason}")
            self._active[request.id] = request
            self.total_requests += 1
        self._start(request.id, prepared)
        record_in_scope(generation)  # a handler call's requests, abortable by its caller

    def _abort(self, request_id: int) -> None:
        with self._lock:
            running = request_id in self._active and not self._closed
        if running:
            self._cancel(request_id)

    def waiting(self) -> int:
        """Requests submitted and not scheduled yet: ``stats().waiting_requests`` without
        copying the measurements (admission control reads it for every request)."""
        with self._lock:
            return sum(1 for r in self._active.values() if r.scheduled is None)

    def stats(self) -> EngineStats:
        with self._lock:
            requests = list(self._active.values())
        running = [r for r in requests if r.scheduled is not None]
        waiting = [r for r in requests if r.scheduled is None]
        return EngineStats(self.name, len(requests), self.total_requests,
                           self.aborted_requests, self.failed_requests, self.generated_tokens,
                           self.kv_cache_usage, self.restarts, self.ready,
                           running_requests=len(running), waiting_requests=len(waiting),
                           running_adapters=_adapters(running),
                           waiting_adapters=_adapters(waiting), max_loras=self.max_loras,
                           context_length=getattr(self, "context_length", 0),
                           measurements=self.measurements.snapshot())

    # -- delivering -------------------------------------------------------------------------

    def _deliver(self, outputs: list[Output], step: StepTimes | None = None) -> None:
        """Hand one engine step's outputs to their requests. ``step``: when the step ran and
        what it scheduled (None: it ended now, and requests with tokens were scheduled)."""
        now = time.monotonic()
        started, ended = (step.started, step.ended) if step is not None else (now, now)
        if step is not None:
            for request_id in step.scheduled:
                scheduled = self._active.get(request_id)
                if scheduled is not None and scheduled.scheduled is None:
                    scheduled.scheduled = started
        handed: list[tuple[_Request, list[Any]]] = []
        for output in outputs:
            request = self._active.get(output.request_id)
            if request is None:
                continue
            request.token_ids.extend(output.token_ids)
            self.generated_tokens += len(output.token_ids)
            self._measure(request, output, started, ended)
            items: list[Any] = []
            if output.error is not None:
                self.failed_requests += 1
                items.append(EngineFailure(f"engine {self.name}: {output.error}"))
            elif output.finish_reason == "abort":
                self.aborted_requests += 1
            elif output.text or output.done:
                items.append(Delta(output.text, output.token_ids,
                                   output.finish_reason if output.done else None,
                                   output.logprobs))
            if output.done:
                if output.error is None:
                    items.append(_END)
                with self._lock:
                    self._active.pop(output.request_id, None)
            handed.append((request, items))
        _hand_out(handed)

    def _measure(self, request: _Request, output: Output, started: float, ended: float
                 ) -> None:
        """Record one step's output of ``request`` in the measurements."""
        if output.token_ids:
            if request.scheduled is None:
                request.scheduled = started
            if request.first_token is None:
                request.first_token = ended
                self.measurements.first_token(request.arrived, ended, request.prompt_tokens,
                                              request.exemplar)
                self.measurements.tokens(len(output.token_ids), None)
            else:
                assert request.last_token is not None
                self.measurements.tokens(len(output.token_ids), ended - request.last_token,
                                         request.exemplar)
            request.last_token = ended
        if output.done and output.error is None:
            self.measurements.finish(FinishedRequest(
                request.arrived, request.scheduled, request.first_token, request.last_token,
                time.monotonic(), request.prompt_tokens, len(request.token_ids),
                request.max_tokens, output.finish_reason or "abort", request.exemplar))

    def end_requests(self, reason: str) -> int:
        """End every active request now: each reader gets EngineUnavailable(``reason``) (a
        stream reports it in-band) and the engine frees its KV cache. For a shutdown whose
        grace period runs out. Returns how many."""
        with self._lock:
            ids = list(self._active)
        for request_id in ids:
            self._cancel(request_id)
        return self._fail(ids, EngineUnavailable(f"engine {self.name}: {reason}"))

    def _fail_all(self, error: EngineError) -> int:
        """Fail every active request with ``error`` (the engine is gone); returns how many."""
        return self._fail(None, error)

    def _fail(self, request_ids: list[int] | None, error: EngineError) -> int:
        """Fail these active requests (None: all) with ``error``; returns how many."""
        with self._lock:
            ids = list(self._active) if request_ids is None else request_ids
            requests = [r for r in (self._active.pop(i, None) for i in ids) if r is not None]
            self.failed_requests += len(requests)
        _hand_out([(request, [error]) for request in requests])
        return len(requests)


def _adapters(requests: list[_Request]) -> tuple[str, ...]:
    """The LoRA adapters these requests run on, sorted, each once."""
    return tuple(sorted({r.adapter for r in requests if r.adapter is not None}))


def _indexed(updates: queue.Queue[tuple[int, Any]], index: int) -> Callable[[Any], None]:
    def sink(item: Any) -> None:
        updates.put((index, item))

    return sink


def _hand_out(handed: list[tuple[_Request, list[Any]]]) -> None:
    """Sync readers get their items now; async readers through one call per event loop."""
    deliveries: dict[asyncio.AbstractEventLoop, list[tuple[_Request, Any]]] = {}
    for request, items in handed:
        if request.loop is None:
            for item in items:
                request.sink(item)
        else:
            deliveries.setdefault(request.loop, []).extend((request, i) for i in items)
    for loop, batch in deliveries.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody reads
            loop.call_soon_threadsafe(_deliver_on_loop, batch)


def _deliver_on_loop(batch: list[tuple[_Request, Any]]) -> None:
    for request, item in batch:
        request.sink(item)
