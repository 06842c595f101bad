"""One openvino-genai ContinuousBatchingPipeline per model, shared by every request.

A single engine thread owns the pipeline: it adds submitted requests, calls ``step()`` while
any request is unfinished, reads each request's new tokens, detokenizes them into text deltas
and hands them to the request's consumer; aborts are applied between steps, freeing the
request's KV-cache blocks. Callers never touch the pipeline, so the event loop never waits on
generation. Consumers read either synchronously (``Generation.deltas()``, for Python handlers
running in threads) or asynchronously (``Generation.adeltas()``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovserve.engine.base import Delta, EngineStats, SamplingParams
from ovserve.errors import EngineError, InvalidInput

log = logging.getLogger(__name__)

_FINISH = {"STOP": "stop", "LENGTH": "length"}
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
    def __init__(self, request_id: int, input_ids: Any, config: Any,
                 sink: Callable[[Any], object]) -> None:
        self.id = request_id
        self.input_ids = input_ids
        self.config = config
        self.sink = sink  # receives Delta objects, then _END
        self.handle: Any = None
        self.token_ids: list[int] = []
        # Incremental detokenization (as vLLM does): text is decoded from a short window,
        # tokens [prefix_offset:read_offset] were already sent as text.
        self.prefix_offset = 0
        self.read_offset = 0


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
    """Continuous batching over one model, with a thread that drives ``step()``."""

    def __init__(self, config: EngineConfig) -> None:
        import openvino_genai as ov_genai

        self.config = config
        device = config.device.upper()
        present = available_devices()
        if device != "AUTO" and device.split(".")[0] not in {d.split(".")[0] for d in present}:
            raise EngineError(
                f"device {config.device!r} is not present; available: {', '.join(present)}")
        if not (config.models_path / "openvino_model.xml").is_file():
            raise EngineError(
                f"{config.models_path} has no openvino_model.xml; prepare the model with "
                "scripts/download_model.py")
        scheduler = ov_genai.SchedulerConfig()
        scheduler.max_num_seqs = config.max_num_seqs
        scheduler.max_num_batched_tokens = config.max_num_batched_tokens
        scheduler.cache_size = max(1, round(config.cache_size_gb))
        scheduler.enable_prefix_caching = config.enable_prefix_caching
        self.pipeline = ov_genai.ContinuousBatchingPipeline(
            str(config.models_path), scheduler, device, dict(config.plugin_config))
        self.tokenizer = self.pipeline.get_tokenizer()
        self.defaults = self.pipeline.get_config()
        self.context_length = self._context_length()
        self.model_defaults = self._model_defaults()  # read once, applied per request
        self.name = config.models_path.name
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: list[_Request] = []
        self._aborts: set[int] = set()
        self._active: dict[int, _Request] = {}
        self._closed = False
        self.total_requests = 0
        self.aborted_requests = 0
        self.generated_tokens = 0
        self._thread = threading.Thread(target=self._run, name=f"engine-{self.name}",
                                        daemon=True)
        self._thread.start()
        log.info("engine: loaded %s on %s (context %d tokens)", config.models_path, device,
                 self.context_length)

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

    def generation_config(self, params: SamplingParams) -> Any:
        """The model's generation_config.json, then the request's fields over it."""
        import openvino_genai as ov_genai

        config = ov_genai.GenerationConfig()
        for name, value in self.model_defaults.items():
            setattr(config, name, value)
        config.max_new_tokens = params.max_tokens or self.config.default_max_tokens
        config.eos_token_id = self.defaults.eos_token_id
        config.stop_token_ids = set(self.defaults.stop_token_ids)
        if params.temperature is not None:
            config.do_sample = params.temperature > 0
            config.temperature = params.temperature if params.temperature > 0 else 1.0
        for name in ("top_p", "top_k", "repetition_penalty", "presence_penalty",
                     "frequency_penalty"):
            value = getattr(params, name)
            if value is not None:
                setattr(config, name, value)
        if params.seed is not None:
            config.rng_seed = params.seed
        if params.stop:
            config.stop_strings = set(params.stop)
            config.include_stop_str_in_output = False
        return config

    def count_tokens(self, text: str) -> int:
        return int(self.tokenizer.encode(text, add_special_tokens=False).input_ids.get_shape()[-1])

    def _prepare(self, prompt: str, params: SamplingParams) -> tuple[Any, Any, int]:
        if params.apply_chat_template and self.tokenizer.chat_template:
            prompt = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True)
        input_ids = self.tokenizer.encode(prompt, add_special_tokens=False).input_ids
        prompt_tokens = int(input_ids.get_shape()[-1])
        config = self.generation_config(params)
        if prompt_tokens + config.max_new_tokens > self.context_length:
            raise InvalidInput(
                f"the prompt has {prompt_tokens} tokens and max_tokens is "
                f"{config.max_new_tokens}: together over the model's context of "
                f"{self.context_length} tokens")
        return input_ids, config, prompt_tokens

    def submit(self, prompt: str, params: SamplingParams) -> Generation:
        """Queue a request for synchronous reading (call from any thread)."""
        input_ids, config, prompt_tokens = self._prepare(prompt, params)
        generation = Generation(self, prompt_tokens)
        generation._sync = queue.Queue()
        self._enqueue(generation, input_ids, config, generation._sync.put)
        return generation

    def submit_batch(self, prompts: list[str], params: SamplingParams) -> Batch:
        """Queue several prompts at once (they are batched with everything else running)."""
        prepared = [self._prepare(prompt, params) for prompt in prompts]  # check all first
        updates: queue.Queue[tuple[int, Any]] = queue.Queue()
        generations = []
        for index, (input_ids, config, prompt_tokens) in enumerate(prepared):
            generation = Generation(self, prompt_tokens)
            self._enqueue(generation, input_ids, config, _indexed(updates, index))
            generations.append(generation)
        return Batch(self, generations, updates)

    def submit_async(self, prompt: str, params: SamplingParams) -> Generation:
        """Queue a request for ``adeltas()`` (call from the event loop)."""
        input_ids, config, prompt_tokens = self._prepare(prompt, params)
        generation = Generation(self, prompt_tokens)
        async_queue: asyncio.Queue[Any] = asyncio.Queue()
        generation._async = async_queue
        loop = asyncio.get_running_loop()
        self._enqueue(generation, input_ids, config,
                      lambda item: loop.call_soon_threadsafe(async_queue.put_nowait, item))
        return generation

    def _enqueue(self, generation: Generation, input_ids: Any, config: Any,
                 sink: Callable[[Any], object]) -> None:
        request = _Request(next(self._ids), input_ids, config, sink)
        generation.request = request
        with self._wake:
            if self._closed:
                raise EngineError(f"engine {self.name} is shut down")
            self._pending.append(request)
            self.total_requests += 1
            self._wake.notify()

    def _abort(self, request_id: int) -> None:
        with self._wake:
            self._aborts.add(request_id)
            self._wake.notify()

    def stats(self) -> EngineStats:
        with self._lock:
            active = len(self._active) + len(self._pending)
        try:
            usage = float(self.pipeline.get_metrics().cache_usage)
        except Exception:
            usage = 0.0
        return EngineStats(self.name, active, self.total_requests, self.aborted_requests,
                           self.generated_tokens, usage)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)

    # -- the engine thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._pending or self._aborts or self._active or self._closed):
                    self._wake.wait()
                if self._closed:
                    for request in [*self._pending, *self._active.values()]:
                        request.sink(Delta("", finish_reason="abort"))
                        request.sink(_END)
                    return
                pending, self._pending = self._pending, []
                aborts, self._aborts = self._aborts, set()
            for request in pending:
                if request.id in aborts:
                    request.sink(_END)
                    continue
                request.handle = self.pipeline.add_request(request.id, request.input_ids,
                                                           request.config)
                self._active[request.id] = request
            for request_id in aborts & self._active.keys():
                request = self._active.pop(request_id)
                request.handle.cancel()
                self.aborted_requests += 1
                request.sink(_END)
            if self.pipeline.has_non_finished_requests():
                try:
                    self.pipeline.step()
                except Exception as exc:  # fail every request rather than the thread
                    log.exception("engine %s: step failed", self.name)
                    for request in self._active.values():
                        request.sink(Delta("", finish_reason=f"error: {exc}"))
                        request.sink(_END)
                    self._active.clear()
                    continue
            self._collect()

    def _collect(self) -> None:
        """Read new tokens of every request, then detokenize all of them in one call."""
        updates: list[tuple[_Request, str | None, bool]] = []
        for request_id, request in list(self._active.items()):
            handle = request.handle
            finish: str | None = None
            if handle.can_read():
                for output in handle.read().values():
                    request.token_ids.extend(output.generated_ids)
                    self.generated_tokens += len(output.generated_ids)
                    finish = _FINISH.get(output.finish_reason.name, finish)
            status = handle.get_status().name
            done = status in ("FINISHED", "STOP", "CANCEL", "IGNORED", "DROPPED_BY_PIPELINE",
                              "DROPPED_BY_HANDLE")
            if done:
                del self._active[request_id]
                if finish is None:
                    finish = "stop" if status in ("FINISHED", "STOP") else "abort"
            if done or len(request.token_ids) > request.read_offset:
                updates.append((request, finish, done))
        if not updates:
            return
        windows: list[list[int]] = []
        for request, _, _ in updates:
            ids = request.token_ids
            windows.append(ids[request.prefix_offset:request.read_offset])
            windows.append(ids[request.prefix_offset:])
        texts = self.tokenizer.decode(windows)  # one detokenizer inference per step
        for n, (request, finish, done) in enumerate(updates):
            prefix_text, full_text = texts[2 * n], texts[2 * n + 1]
            delta = ""
            if len(full_text) > len(prefix_text) and (done or not full_text.endswith("\ufffd")):
                delta = full_text[len(prefix_text):]
                request.prefix_offset = request.read_offset
                request.read_offset = len(request.token_ids)
            if delta or done:
                request.sink(Delta(delta, finish_reason=finish if done else None))
            if done:
                request.sink(_END)
