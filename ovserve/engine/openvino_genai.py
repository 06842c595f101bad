"""One openvino-genai ContinuousBatchingPipeline per model, shared by every request.

The pipeline runs in an engine process of its own (``ovserve.engine.worker``: its ``step()``
holds the GIL, so in this process it would stall everything else). This side tokenizes and
checks requests, sends them to the engine process, and a receiver thread hands each step's
text deltas to the requests' consumers: one wake-up per event loop per step for async readers
(``Generation.adeltas()``), a queue per request for handler threads (``Generation.deltas()``).
Aborts (an iterator closed early, a client gone) cancel the request in the engine, freeing its
KV-cache blocks.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ovserve.engine import worker
from ovserve.engine.base import Delta, EngineStats, SamplingParams
from ovserve.errors import EngineError, InvalidInput

log = logging.getLogger(__name__)

_SAMPLING_DEFAULTS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty",
                      "presence_penalty", "frequency_penalty")
_END = object()


@dataclass(frozen=True)
class EngineConfig:
    models_path: Path
    device: str = "CPU"
    plugin_config: Mapping[str, Any] = field(default_factory=dict)
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    cache_size_gb: float = 1.0
    enable_prefix_caching: bool = True
    default_max_tokens: int = 256


def available_devices() -> list[str]:
    import openvino as ov

    return list(ov.Core().available_devices)


class _Request:
    """A request as this process sees it: where its deltas go and the tokens so far."""

    def __init__(self, request_id: int, sink: Callable[[Any], object],
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.id = request_id
        self.sink = sink  # receives Delta objects, then _END
        self.loop = loop  # async readers: sink is called on this loop
        self.token_ids: list[int] = []


class Generation:
    """One submitted request. Iterate its deltas; ``abort()`` (or leaving early) cancels it."""

    def __init__(self, engine: OpenVINOEngine, prompt_tokens: int) -> None:
        self.engine = engine
        self.prompt_tokens = prompt_tokens
        self.request: _Request | None = None
        self._sync: queue.Queue[Any] | None = None
        self._async: asyncio.Queue[Any] | None = None
        self.finished = False

    def abort(self) -> None:
        if self.request is not None and not self.finished:
            self.engine._abort(self.request.id)

    def deltas(self) -> Generator[Delta, None, None]:
        """Blocking iterator (for handler threads). Closing it early aborts the request."""
        assert self._sync is not None, "submitted for async reading"
        try:
            while (item := self._sync.get()) is not _END:
                yield item
            self.finished = True
        finally:
            self.abort()

    async def adeltas(self) -> AsyncGenerator[Delta, None]:
        """Async iterator. Cancellation or closing it early aborts the request."""
        assert self._async is not None, "submitted for sync reading"
        try:
            while (item := await self._async.get()) is not _END:
                yield item
            self.finished = True
        finally:
            self.abort()


def _indexed(updates: queue.Queue[tuple[int, Any]], index: int) -> Callable[[Any], None]:
    def sink(item: Any) -> None:
        updates.put((index, item))

    return sink


class Batch:
    """Several prompts submitted together; their deltas read as one stream of updates."""

    def __init__(self, engine: OpenVINOEngine, generations: list[Generation],
                 updates: queue.Queue[tuple[int, Any]]) -> None:
        self.engine = engine
        self.generations = generations
        self._updates = updates

    @property
    def completion_tokens(self) -> list[int]:
        return [len(g.request.token_ids) if g.request else 0 for g in self.generations]

    @property
    def prompt_tokens(self) -> list[int]:
        return [g.prompt_tokens for g in self.generations]

    def updates(self) -> Iterator[list[Delta | None]]:
        """Blocking: per update, one entry per prompt (None where it has nothing new).
        Closing the iterator early aborts every unfinished request."""
        open_ = set(range(len(self.generations)))
        try:
            while open_:
                pending: list[Delta | None] = [None] * len(self.generations)
                index, item = self._updates.get()
                while True:
                    if item is _END:
                        open_.discard(index)
                        self.generations[index].finished = True
                    elif pending[index] is None:
                        pending[index] = item
                    else:  # merge two deltas of one prompt that arrived together
                        previous = pending[index]
                        assert previous is not None
                        pending[index] = Delta(previous.text + item.text,
                                               finish_reason=item.finish_reason)
                    try:
                        index, item = self._updates.get_nowait()
                    except queue.Empty:
                        break
                if any(d is not None for d in pending):
                    yield pending
        finally:
            for generation in self.generations:
                generation.abort()


class OpenVINOEngine:
    """Continuous batching over one model, in an engine process driven from here."""

    def __init__(self, config: EngineConfig) -> None:
        import openvino_genai as ov_genai

        self.config = config
        device = config.device.upper()
        present = available_devices()
        if device != "AUTO" and device.split(".")[0] not in {d.split(".")[0] for d in present}:
            raise EngineError(
                f"device {config.device!r} is not present; available: {', '.join(present)}")
        for needed in ("openvino_model.xml", "openvino_tokenizer.xml",
                       "openvino_detokenizer.xml"):
            if not (config.models_path / needed).is_file():
                raise EngineError(
                    f"{config.models_path} has no {needed}; prepare the model with "
                    "scripts/download_model.py")
        self.name = config.models_path.name
        try:
            self.tokenizer = ov_genai.Tokenizer(str(config.models_path))
        except Exception as exc:
            raise EngineError(f"loading the tokenizer in {config.models_path} failed: "
                              f"{worker.error_reason(exc)}") from exc
        self.context_length = self._context_length()
        self.model_defaults = self._model_defaults()  # read once, applied per request
        self._ids = itertools.count()
        self._lock = threading.Lock()  # guards _active, _closed and _dead
        self._send_lock = threading.Lock()  # one writer at a time on the pipe, never under _lock
        self._active: dict[int, _Request] = {}
        self._closed = False
        self._dead: str | None = None  # why the engine process is gone
        self.total_requests = 0
        self.aborted_requests = 0
        self.generated_tokens = 0
        self.kv_cache_usage = 0.0
        self._process, self._conn = _start_worker(config)
        try:
            kind, info = self._conn.recv()
        except (EOFError, OSError):
            kind, info = "failed", f"the engine process exited with code {self._process.wait()}"
        if kind != "ready":
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._conn.close()
            raise EngineError(f"engine {self.name}: {info}")
        self.eos_token_id: int = info["eos_token_id"]
        self.stop_token_ids: list[int] = info["stop_token_ids"]
        self._receiver = threading.Thread(target=self._receive, name=f"engine-{self.name}",
                                          daemon=True)
        self._receiver.start()
        atexit.register(self.close)  # the engine process stops with this one
        log.info("engine: loaded %s on %s in process %d (context %d tokens)",
                 config.models_path, device, self._process.pid, self.context_length)

    def _model_defaults(self) -> dict[str, Any]:
        """Sampling defaults from the model's generation_config.json."""
        path = self.config.models_path / "generation_config.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        return {k: v for k, v in data.items() if k in _SAMPLING_DEFAULTS and v is not None}

    def _context_length(self) -> int:
        path = self.config.models_path / "config.json"
        if path.is_file():
            data = json.loads(path.read_text())
            for key in ("max_position_embeddings", "n_positions", "seq_length"):
                if isinstance(data.get(key), int):
                    return int(data[key])
        return 2048

    # -- requests ----------------------------------------------------------------------------

    def generation_config(self, params: SamplingParams) -> dict[str, Any]:
        """GenerationConfig fields: the model's generation_config.json, then the request's."""
        fields: dict[str, Any] = dict(self.model_defaults)
        fields["max_new_tokens"] = params.max_tokens or self.config.default_max_tokens
        fields["eos_token_id"] = self.eos_token_id
        fields["stop_token_ids"] = set(self.stop_token_ids)
        if params.temperature is not None:
            fields["do_sample"] = params.temperature > 0
            fields["temperature"] = params.temperature if params.temperature > 0 else 1.0
        for name in ("top_p", "top_k", "repetition_penalty", "presence_penalty",
                     "frequency_penalty"):
            value = getattr(params, name)
            if value is not None:
                fields[name] = value
        if params.seed is not None:
            fields["rng_seed"] = params.seed
        if params.stop:
            fields["stop_strings"] = set(params.stop)
            fields["include_stop_str_in_output"] = False
        try:  # fail here, as a bad request, not later in the engine process
            worker.generation_config(fields).validate()
        except Exception as exc:
            raise InvalidInput(f"invalid sampling parameters: {worker.error_reason(exc)}") from exc
        return fields

    def _prepare(self, prompt: str, params: SamplingParams, fill_up_to: int | None = None
                 ) -> tuple[list[int], dict[str, Any]]:
        """Token ids and GenerationConfig fields. Without ``params.max_tokens``, ``fill_up_to``
        asks for as many tokens as the context leaves, at most that many."""
        if params.apply_chat_template and self.tokenizer.chat_template:
            prompt = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True)
        input_ids = self.tokenizer.encode(prompt, add_special_tokens=False).input_ids
        token_ids: list[int] = input_ids.data[0].tolist()
        if params.max_tokens is None and fill_up_to is not None:
            room = self.context_length - len(token_ids)
            if room < 1:
                raise InvalidInput(f"the prompt has {len(token_ids)} tokens, more than the "
                                   f"model's context of {self.context_length} tokens")
            params = replace(params, max_tokens=min(fill_up_to, room))
        fields = self.generation_config(params)
        if len(token_ids) + fields["max_new_tokens"] > self.context_length:
            raise InvalidInput(
                f"the prompt has {len(token_ids)} tokens and max_tokens is "
                f"{fields['max_new_tokens']}: together over the model's context of "
                f"{self.context_length} tokens")
        return token_ids, fields

    def submit(self, prompt: str, params: SamplingParams) -> Generation:
        """Queue a request for synchronous reading (call from any thread)."""
        token_ids, fields = self._prepare(prompt, params)
        generation = Generation(self, len(token_ids))
        generation._sync = queue.Queue()
        self._enqueue(generation, token_ids, fields, generation._sync.put)
        return generation

    def submit_batch(self, prompts: list[str], params: SamplingParams) -> Batch:
        """Queue several prompts at once (they are batched with everything else running)."""
        prepared = [self._prepare(prompt, params) for prompt in prompts]  # check all first
        updates: queue.Queue[tuple[int, Any]] = queue.Queue()
        generations = []
        for index, (token_ids, fields) in enumerate(prepared):
            generation = Generation(self, len(token_ids))
            self._enqueue(generation, token_ids, fields, _indexed(updates, index))
            generations.append(generation)
        return Batch(self, generations, updates)

    def submit_async(self, prompt: str, params: SamplingParams, *, n: int = 1,
                     fill_up_to: int | None = None) -> list[Generation]:
        """Queue ``n`` generations of one prompt (tokenized once) for ``adeltas()``; call from
        the event loop. ``fill_up_to``: see ``_prepare``."""
        token_ids, fields = self._prepare(prompt, params, fill_up_to)
        loop = asyncio.get_running_loop()
        generations = []
        for _ in range(n):
            generation = Generation(self, len(token_ids))
            async_queue: asyncio.Queue[Any] = asyncio.Queue()
            generation._async = async_queue
            self._enqueue(generation, token_ids, fields, async_queue.put_nowait, loop)
            generations.append(generation)
        return generations

    def _enqueue(self, generation: Generation, token_ids: list[int], fields: dict[str, Any],
                 sink: Callable[[Any], object],
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        request = _Request(next(self._ids), sink, loop)
        generation.request = request
        with self._lock:
            if self._closed or self._dead:
                raise EngineError(f"engine {self.name} is not running: "
                                  f"{self._dead or 'shut down'}")
            self._active[request.id] = request
            self.total_requests += 1
        self._send(("add", request.id, token_ids, fields))

    def _abort(self, request_id: int) -> None:
        with self._lock:
            running = request_id in self._active and not (self._closed or self._dead)
        if running:
            self._send(("abort", request_id))

    def _send(self, message: tuple[Any, ...]) -> None:
        """Write to the engine process. Not under ``_lock``: a write that waits for the engine
        to read must never stop the receiver thread. If the engine is gone, the receiver
        thread sees it and fails every active request, this one included."""
        with self._send_lock, contextlib.suppress(OSError):
            self._conn.send(message)

    def stats(self) -> EngineStats:
        with self._lock:
            active = len(self._active)
        return EngineStats(self.name, active, self.total_requests, self.aborted_requests,
                           self.generated_tokens, self.kv_cache_usage)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            dead = self._dead
        if not dead:
            self._send(("close",))
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._receiver.join(timeout=5)
        self._conn.close()

    # -- the receiver thread ----------------------------------------------------------------

    def _receive(self) -> None:
        while True:
            try:
                _, updates, self.kv_cache_usage = self._conn.recv()
            except (EOFError, OSError):
                self._engine_gone()
                return
            self._dispatch(updates)

    def _dispatch(self, updates: list[worker.Update]) -> None:
        """Hand a step's updates to their requests."""
        handed: list[tuple[_Request, list[Any]]] = []
        for request_id, text, new_ids, finish, done in updates:
            request = self._active.get(request_id)
            if request is None:
                continue
            request.token_ids.extend(new_ids)
            self.generated_tokens += len(new_ids)
            items: list[Any] = []
            if finish == "abort":
                self.aborted_requests += 1
            elif text or done:
                items.append(Delta(text, finish_reason=finish))
            if done:
                items.append(_END)
                with self._lock:
                    del self._active[request_id]
            handed.append((request, items))
        _hand_out(handed)

    def _engine_gone(self) -> None:
        if not self._closed:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1)  # for its exit code
        with self._lock:
            closed, requests = self._closed, list(self._active.values())
            self._active.clear()
            if not closed:
                self._dead = f"the engine process exited (code {self._process.returncode})"
                log.error("engine %s: %s; failing %d request(s)", self.name, self._dead,
                          len(requests))
        reason = "abort" if closed else f"error: {self._dead}"
        _hand_out([(request, [Delta("", finish_reason=reason), _END]) for request in requests])


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
            loop.call_soon_threadsafe(_deliver, batch)


def _start_worker(config: EngineConfig) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start ``python -m ovserve.engine`` with one end of a socket pair."""
    ours, theirs = socket.socketpair()
    package_root = str(Path(worker.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    with theirs:
        process = subprocess.Popen(
            [sys.executable, "-m", "ovserve.engine", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env)
    conn = Connection(ours.detach())
    conn.send((config, logging.getLogger().getEffectiveLevel()))
    return process, conn


def _deliver(batch: list[tuple[_Request, Any]]) -> None:
    for request, item in batch:
        request.sink(item)
