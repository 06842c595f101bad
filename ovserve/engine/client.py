"""The serving process's side of an openvino-genai engine, and its supervisor.

The ContinuousBatchingPipeline runs in an engine process (``engine.process``: its ``step()``
holds the GIL, so in this process it would stall everything else). This side applies the chat
template, tokenizes, decides limits and checks requests (``prepare``), sends them to the
engine process, and a receiver thread hands each step's output to the requests' readers.

Supervision: when the engine process dies (killed, crashed, out of memory) every request it
had fails at once with ``EngineFailure``, ``ready`` turns false, and the process is restarted
with exponential backoff; requests submitted meanwhile get ``EngineUnavailable``.

Tokenization is serialised behind one lock, and the tokenizer is warmed up at load: the first
``encode`` -> numpy conversion in several threads at once could deadlock on a C++ static
initialisation guard against the GIL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ovserve.engine import devices, grammar, process, workdirs
from ovserve.engine.adapters import AdapterSource
from ovserve.engine.base import EngineConfig, Prepared, SamplingParams
from ovserve.engine.limits import GenerationLimits, Prompt, max_new_tokens, render_prompt
from ovserve.engine.lora_catalog import AdapterCatalog
from ovserve.engine.lora_graph import linear_shapes
from ovserve.engine.messages import Abort, Add, Close, LoadFailed, Output, Ready, Start, Step
from ovserve.engine.pipelines import error_reason
from ovserve.engine.requests import EngineBase, StepTimes
from ovserve.engine.scope import current_adapter
from ovserve.errors import (
    AdapterNotFound,
    EngineError,
    EngineFailure,
    EngineUnavailable,
    InvalidInput,
    Unsupported,
)

log = logging.getLogger(__name__)

_SAMPLING_DEFAULTS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty",
                      "presence_penalty", "frequency_penalty", "num_assistant_tokens",
                      "max_ngram_size")
#: Prompt lookup's settings when neither the request nor generation_config.json has them:
#: one proposed token was the fastest on a 2-core CPU with a 135M model (1, 3 and 5 tried)
PROMPT_LOOKUP_DEFAULTS = {"num_assistant_tokens": 1, "max_ngram_size": 3}
#: Draft tokens proposed per step with a draft model when a request sets neither
#: num_assistant_tokens nor assistant_confidence_threshold (OVMS's default)
SPECULATIVE_NUM_ASSISTANT_TOKENS = 5
#: How long an engine process may take to load its model.
LOAD_TIMEOUT_SECONDS = 600.0
#: Engine processes replaced by a new LoRA slot set and still finishing their requests: at
#: most this many; a further change waits (up to the timeout) for one to finish.
MAX_RETIRED = 2
MAX_RETIRED_WAIT_SECONDS = 120.0


@dataclass(eq=False)
class _Worker:
    """One engine process and the connection to it."""

    process: subprocess.Popen[bytes]
    conn: Connection
    ready: Ready
    versions: dict[str, int]  # adapter -> version of the weights in its slot
    workdir: str | None = None  # its LoRA model folder, removed when it is gone

    @property
    def adapters(self) -> list[str]:
        """The LoRA adapters in its slots, in slot order."""
        return sorted(self.ready.slots, key=self.ready.slots.__getitem__)


class OpenVINOEngine(EngineBase):
    """Continuous batching over one model, in a supervised engine process driven from here."""

    def __init__(self, config: EngineConfig, *, restart_delays: tuple[float, float] = (0.5, 30.0)
                 ) -> None:
        import openvino_genai as ov_genai

        super().__init__(config.models_path.name)
        self.config = config
        self.restart_delays = restart_delays  # first and longest wait before a restart
        devices.check(config.device)
        _check_draft(config)
        for needed in ("openvino_model.xml", "openvino_tokenizer.xml",
                       "openvino_detokenizer.xml"):
            if not (config.models_path / needed).is_file():
                raise EngineError(
                    f"{config.models_path} has no {needed}; prepare the model with "
                    "scripts/download_model.py")
        self._tokenizer_lock = threading.Lock()
        try:
            self.tokenizer = ov_genai.Tokenizer(str(config.models_path))
            self._warm_up()
        except Exception as exc:
            raise EngineError(f"loading the tokenizer in {config.models_path} failed: "
                              f"{error_reason(exc)}") from exc
        self.context_length = self._context_length()
        self.model_defaults, self.model_max_new_tokens = self._model_defaults()
        self._send_lock = threading.Lock()  # one writer on the pipe, never under _lock
        self._down: str | None = None  # why the engine process is not running
        self.catalog: AdapterCatalog | None = None
        self._swap_lock = threading.Lock()  # one change of adapter slots at a time
        self._owner: dict[int, _Worker] = {}  # request -> the engine process running it
        self._retired: list[_Worker] = []  # replaced by a new slot set, finishing requests
        slots: list[str] = []
        if config.lora is not None:
            self.catalog = AdapterCatalog(config.lora, self._linear_shapes())
            self.max_loras = config.lora.max_loras
            self.catalog.refresh()
            slots = self.catalog.initial_slots()
        self._worker = self._spawn(slots)
        if self.catalog is not None and config.lora and config.lora.refresh_seconds > 0:
            threading.Thread(target=self._rescan, name=f"lora-scan-{self.name}",
                             daemon=True).start()
        try:  # the server's generation overrides must make a valid configuration
            self.generation_config(SamplingParams(), 1)
        except InvalidInput as exc:
            self.close()
            raise EngineError(f"engine {self.name}: the generation defaults are invalid "
                              f"(--override_generation_config?): {exc}") from exc
        log.info("engine: loaded %s on %s%s%s%s in process %d (context %d tokens)",
                 config.models_path, config.device.upper(),
                 f" with {dict(config.plugin_config)}" if config.plugin_config else "",
                 ", deterministic (one sequence at a time, whole-prompt prefill, no prefix "
                 "cache)"
                 if config.deterministic else "", _features(config), self._worker.process.pid,
                 self.context_length)

    @property
    def pid(self) -> int:
        """The engine process's id (the current one, after restarts)."""
        return self._worker.process.pid

    def _model_defaults(self) -> tuple[dict[str, Any], int | None]:
        """Sampling defaults and max_new_tokens from the model's generation_config.json, with
        the server's overrides laid over it (``seed`` is openvino-genai's ``rng_seed``)."""
        path = self.config.models_path / "generation_config.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        data.update(self.config.generation_overrides)
        if "temperature" in self.config.generation_overrides:
            data["do_sample"] = float(data["temperature"]) > 0
        defaults = {k: v for k, v in data.items() if k in _SAMPLING_DEFAULTS and v is not None}
        if isinstance(data.get("seed"), int):
            defaults["rng_seed"] = data["seed"]
        if self.config.generation_overrides:
            log.info("engine %s: generation defaults %s", self.name, defaults)
        max_new = data.get("max_new_tokens")
        return defaults, max_new if isinstance(max_new, int) and max_new > 0 else None

    def _context_length(self) -> int:
        path = self.config.models_path / "config.json"
        if path.is_file():
            data = json.loads(path.read_text())
            for key in ("max_position_embeddings", "n_positions", "seq_length"):
                if isinstance(data.get(key), int):
                    return int(data[key])
        return 2048

    # -- tokenization (serialised; see the module docstring) --------------------------------

    def _warm_up(self) -> None:
        self._encode("warm up")
        if self.chat_template:
            self._apply_template([{"role": "user", "content": "warm up"}])

    def _encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            ids = self.tokenizer.encode(text, add_special_tokens=False).input_ids
            token_ids: list[int] = ids.data[0].tolist()
        return token_ids

    def token_texts(self, token_ids: list[int]) -> list[str]:
        """Each token's own text (for logprobs)."""
        with self._tokenizer_lock:
            return [str(t) for t in self.tokenizer.decode([[i] for i in token_ids])]

    def _apply_template(self, messages: list[dict[str, Any]]) -> str:
        return self.render_chat(messages, add_generation_prompt=True,
                                chat_template=self.chat_template, tools=None, extra_context={})

    @property
    def chat_template(self) -> str:
        """The model's chat template: the server's (``--chat_template``), else its folder's
        ``chat_template.jinja`` (as OVMS reads it), else the tokenizer's."""
        if not hasattr(self, "_chat_template"):
            path = self.config.models_path / "chat_template.jinja"
            self._chat_template = (self.config.chat_template or (
                path.read_text() if path.is_file() else str(self.tokenizer.chat_template or "")))
        return self._chat_template

    def render_chat(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
                    chat_template: str, tools: list[dict[str, Any]] | None,
                    extra_context: dict[str, Any]) -> str:
        """openvino-genai's ``apply_chat_template`` with tools and template variables."""
        with self._tokenizer_lock:
            text: str = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=add_generation_prompt,
                chat_template=chat_template, tools=tools, extra_context=extra_context)
        return text

    def tokenize(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """``text``'s token ids (with the tokenizer's special tokens when asked)."""
        with self._tokenizer_lock:
            ids = self.tokenizer.encode(text, add_special_tokens=add_special_tokens).input_ids
            token_ids: list[int] = ids.data[0].tolist()
        return token_ids

    def detokenize(self, token_ids: list[int]) -> str:
        """The text of ``token_ids``, special tokens included (as vLLM's /detokenize)."""
        with self._tokenizer_lock:
            return str(self.tokenizer.decode(token_ids, skip_special_tokens=False))

    # -- requests ----------------------------------------------------------------------------

    def prepare(self, prompt: Prompt, params: SamplingParams,
                limits: GenerationLimits | None = None, adapter: str | None = None) -> Prepared:
        adapter = adapter if adapter is not None else current_adapter()
        if adapter is not None:
            self._make_resident(adapter)
        text = render_prompt(prompt, params, self.chat_template, self._apply_template)
        token_ids = self._encode(text)
        self._check_eviction_window(len(token_ids))
        max_new = max_new_tokens(params, limits or GenerationLimits(), len(token_ids),
                                 self.context_length, self.model_max_new_tokens)
        return Prepared(token_ids, self.generation_config(params, max_new), adapter,
                        keep_special=not params.skip_special_tokens)

    def _check_eviction_window(self, prompt_tokens: int) -> None:
        """openvino-genai 2026.4.1's cache eviction fails the step (and with it every request
        in the batch) on a prompt longer than start_size by less than snapkv_window_size
        tokens (measured: "Check 'new_scores_size >= num_snapkv_scores' failed"); refuse that
        prompt alone instead."""
        eviction = self.config.cache_eviction
        if eviction is None or not eviction.snapkv_window_size:
            return
        low, high = eviction.start_size, eviction.start_size + eviction.snapkv_window_size
        if low < prompt_tokens < high:
            raise InvalidInput(
                f"a prompt of {prompt_tokens} tokens cannot run on model {self.name}: with its "
                f"cache_eviction_config (start_size {low}, snapkv_window_size "
                f"{eviction.snapkv_window_size}) openvino-genai fails prompts of {low + 1} to "
                f"{high - 1} tokens; lengthen or shorten the prompt, or set snapkv_window_size "
                "0 in the graph")

    def generation_config(self, params: SamplingParams, max_new: int) -> dict[str, Any]:
        """GenerationConfig fields: the model's generation_config.json, then the request's."""
        ready = self._worker.ready
        fields: dict[str, Any] = dict(self.model_defaults)
        fields["max_new_tokens"] = max_new
        fields["eos_token_id"] = ready.eos_token_id
        fields["stop_token_ids"] = set(ready.stop_token_ids) | set(params.stop_token_ids)
        fields["ignore_eos"] = params.ignore_eos
        fields["min_new_tokens"] = params.min_tokens
        if params.temperature is not None:
            fields["do_sample"] = params.temperature > 0
            fields["temperature"] = params.temperature if params.temperature > 0 else 1.0
        for name in ("top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
                     "frequency_penalty"):
            value = getattr(params, name)
            if value is not None:
                fields[name] = value
        if params.seed is not None:
            fields["rng_seed"] = params.seed
        if params.stop:
            fields["stop_strings"] = set(params.stop)
            fields["include_stop_str_in_output"] = params.include_stop_str_in_output
        if params.logprobs:
            fields["logprobs"] = 1  # the sampled token's (openvino-genai has no alternatives)
        self._prompt_lookup(fields, params)
        if params.structured is not None:
            # beside LoRA adapters too: the widened detokenizer names every slot's tokens
            # (engine.lora_graph.widen_detokenizer), so the grammar masks within each slot
            kind, value = params.structured
            grammar.check(kind, value)  # one that cannot compile would fail the whole batch
            fields[kind] = value
        try:  # fail here, as a bad request, not later in the engine process
            process.generation_config(fields).validate()
        except Exception as exc:
            raise InvalidInput(
                f"invalid sampling parameters: {error_reason(exc)}") from exc
        return fields

    def _prompt_lookup(self, fields: dict[str, Any], params: SamplingParams) -> None:
        """Assisted generation's fields. Prompt lookup: every request has num_assistant_tokens
        and max_ngram_size (the request's, else the model's defaults, else ours). A draft
        model: the request's num_assistant_tokens / assistant_confidence_threshold, else
        num_assistant_tokens 5 (as OVMS); an EAGLE3 draft also makes the request greedy (as
        OVMS). Other engines refuse them."""
        names = tuple(PROMPT_LOOKUP_DEFAULTS)
        draft = self.config.draft
        if draft is not None:
            fields.pop("max_ngram_size", None)
            if params.max_ngram_size is not None:
                raise InvalidInput("max_ngram_size: only for a model served with prompt lookup "
                                   "decoding, not a draft model", "max_ngram_size")
            if params.num_assistant_tokens is not None:
                fields["num_assistant_tokens"] = params.num_assistant_tokens
            threshold = params.assistant_confidence_threshold
            if threshold is not None:
                fields["assistant_confidence_threshold"] = threshold
                if params.num_assistant_tokens is None:  # the threshold decides alone
                    fields.pop("num_assistant_tokens", None)
            if not fields.get("num_assistant_tokens") and not threshold:
                fields["num_assistant_tokens"] = SPECULATIVE_NUM_ASSISTANT_TOKENS
            if draft.eagle3:
                fields["do_sample"] = False
            return
        if params.assistant_confidence_threshold is not None:
            raise InvalidInput("assistant_confidence_threshold: only for a model served with a "
                               "draft model (draft_models_path in its graph)",
                               "assistant_confidence_threshold")
        if not self.config.prompt_lookup:
            for name in names:
                fields.pop(name, None)  # a generation_config.json default: not for this engine
                if getattr(params, name) is not None:
                    raise InvalidInput(
                        f"{name}: only for a model served with prompt lookup decoding "
                        '(plugin_config {"prompt_lookup": true} in its graph) or a draft model '
                        "(draft_models_path)", name)
            return
        for name in names:
            value = getattr(params, name)
            fields[name] = value if value is not None else fields.get(
                name, PROMPT_LOOKUP_DEFAULTS[name])

    def _unavailable(self) -> str | None:
        return self._down

    def _start(self, request_id: int, prepared: Prepared) -> None:
        with self._lock:
            worker = self._worker
            self._owner[request_id] = worker
        token_ids, fields = prepared.token_ids, prepared.fields
        if prepared.adapter is not None:
            slot = worker.ready.slots.get(prepared.adapter)
            if slot is None:  # unloaded or evicted since prepare(): rare, and said so
                self._deliver([Output(request_id, "", [], done=True, error=(
                    f"LoRA adapter {prepared.adapter!r} was unloaded before the request "
                    "started"))])
                return
            token_ids, fields = _on_slot(token_ids, fields, slot * worker.ready.vocab_size)
        self._send(worker, Add(request_id, token_ids, fields, prepared.keep_special))

    def _cancel(self, request_id: int) -> None:
        with self._lock:
            worker = self._owner.get(request_id, self._worker)
        self._send(worker, Abort(request_id))

    def _send(self, worker: _Worker, message: Add | Abort | Close) -> None:
        """Write to an engine process. Not under ``_lock``: a write that waits for the engine
        to read must never stop the receiver thread. If the engine is gone, the receiver
        thread sees it and fails every active request, this one included."""
        with self._send_lock, contextlib.suppress(OSError):
            worker.conn.send(message)

    # -- LoRA adapters -----------------------------------------------------------------------

    def adapters(self) -> list[AdapterSource]:
        """The LoRA adapters this engine serves (none without ``EngineConfig.lora``)."""
        if self.catalog is None:
            return []
        self.catalog.refresh_if_due()
        return sorted(self.catalog.known().values(), key=lambda a: a.name)

    def find_adapter(self, name: str) -> AdapterSource | None:
        if self.catalog is None:
            return None
        try:
            return self.catalog.get(name)
        except AdapterNotFound:
            return None

    def load_adapter(self, name: str, path: Path) -> AdapterSource:
        return self._lora().load(name, path)

    def unload_adapter(self, name: str) -> None:
        self._lora().unload(name)

    def _lora(self) -> AdapterCatalog:
        if self.catalog is None:
            raise Unsupported(f"model {self.name} serves no LoRA adapters (start the server "
                              "with --lora_dir, or set lora_dir in its graph)")
        return self.catalog

    def _linear_shapes(self) -> dict[str, tuple[int, int]]:
        import openvino as ov

        model = ov.Core().read_model(self.config.models_path / "openvino_model.xml")
        return linear_shapes(model)

    def _make_resident(self, name: str) -> None:
        """Have adapter ``name`` in a slot of the engine: if it is not, start an engine
        process with the new slot set, send new requests there, and let the old one finish
        its requests (none fails, none waits but this one)."""
        catalog = self._lora()
        catalog.get(name)  # 404 for an unknown adapter
        catalog.touch(name)
        if self._worker.versions.get(name) == catalog.version(name):
            return
        with self._swap_lock:
            current = self._worker
            if current.versions.get(name) == catalog.version(name):
                return
            slots = catalog.slots_with(name, current.adapters)
            started = time.monotonic()
            self._wait_for_retired()
            worker = self._spawn(slots)
            with self._lock:
                closed = self._closed
                if not closed:
                    retired, self._worker = self._worker, worker
                    self._retired.append(retired)
            if closed:  # closed while it was loading
                self._stop_worker(worker)
                raise EngineUnavailable(f"engine {self.name} was shut down")
            log.info("engine %s: LoRA slots now %s (engine process %d, %.1f s)", self.name,
                     ", ".join(slots), worker.process.pid, time.monotonic() - started)
            self._retire_if_idle(retired)

    def _wait_for_retired(self) -> None:
        """Bound the engine processes alive at once: more adapters in use than --max_loras
        would otherwise start one per request, each holding a KV cache while it drains."""
        deadline = time.monotonic() + MAX_RETIRED_WAIT_SECONDS
        if len(self._retired) >= MAX_RETIRED:
            log.warning("engine %s: LoRA slots change faster than requests finish; raise "
                        "--max_loras (now %d) above the adapters in use", self.name,
                        self._lora().options.max_loras)
        while len(self._retired) >= MAX_RETIRED and time.monotonic() < deadline:
            time.sleep(0.05)

    def _retire_if_idle(self, worker: _Worker) -> None:
        with self._lock:
            idle = (worker is not self._worker and worker in self._retired
                    and worker not in self._owner.values())
            if idle:
                self._retired.remove(worker)
        if idle:
            threading.Thread(target=self._stop_worker, args=(worker,), daemon=True,
                             name=f"retire-{self.name}").start()

    def _rescan(self) -> None:
        assert self.catalog is not None
        while not self._closed:
            time.sleep(self.catalog.options.refresh_seconds)
            try:
                self.catalog.refresh_if_due()
            except Exception:  # a scan must never end the thread
                log.exception("LoRA: re-scanning the adapter folders failed")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = [self._worker, *self._retired]
        for worker in workers:
            self._stop_worker(worker)
        self._fail_all(EngineUnavailable(f"engine {self.name} was shut down"))

    # -- the engine process and its supervision ----------------------------------------------

    def _spawn(self, adapters: list[str]) -> _Worker:
        """Start an engine process with ``adapters`` in its LoRA slots, wait until its model is
        loaded, start its receiver."""
        weights = [(name, self._lora().weights(name)) for name in adapters] if adapters else []
        versions = {name: self._lora().version(name) for name in adapters}
        ours, theirs = socket.socketpair()
        package_root = str(Path(process.__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        with theirs:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ovserve.engine", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=env)
        conn = Connection(ours.detach())
        # made and removed here: a killed engine process cannot clean up after itself
        workdir = workdirs.make() if weights else None
        reply: Any
        try:
            conn.send(Start(self.config, logging.getLogger().getEffectiveLevel(), weights,
                            workdir))
            reply = (conn.recv() if conn.poll(LOAD_TIMEOUT_SECONDS)
                     else LoadFailed(f"no answer in {LOAD_TIMEOUT_SECONDS:.0f} s"))
        except (EOFError, OSError):
            reply = LoadFailed(f"the engine process exited with code {proc.wait()}")
        if not isinstance(reply, Ready):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            conn.close()
            workdirs.remove(workdir)
            reason = reply.reason if isinstance(reply, LoadFailed) else repr(reply)
            raise EngineError(f"engine {self.name}: {reason}")
        worker = _Worker(proc, conn, reply, versions, workdir)
        threading.Thread(target=self._receive, args=(worker,), name=f"engine-{self.name}",
                         daemon=True).start()
        return worker

    def _receive(self, worker: _Worker) -> None:
        while True:
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, Step):
                if worker is self._worker:
                    self.kv_cache_usage = message.cache_usage
                self._deliver(message.outputs, StepTimes(message.started, message.ended,
                                                         message.scheduled))
                finished = [o.request_id for o in message.outputs if o.done]
                if finished:
                    with self._lock:
                        for request_id in finished:
                            self._owner.pop(request_id, None)
                    if worker is not self._worker:
                        self._retire_if_idle(worker)
        worker.conn.close()
        self._worker_gone(worker)

    def _worker_gone(self, worker: _Worker) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=5)  # for its exit code
        reason = f"the engine process exited (code {worker.process.returncode})"
        workdirs.remove(worker.workdir)
        with self._lock:
            current = worker is self._worker
            if not current:
                with contextlib.suppress(ValueError):
                    self._retired.remove(worker)
            elif not self._closed:
                self._down = f"{reason}; restarting it"
            others = set(self._owner.values()) - {worker}
            lost = [r for r in self._active if self._owner.get(r) not in others]
            for request_id in lost:
                self._owner.pop(request_id, None)
        if self._closed:
            return
        failed = self._fail(lost, EngineFailure(f"engine {self.name}: {reason}"))
        if not current:  # a retired one (replaced by a new slot set): nothing to restart
            if failed:
                log.error("engine %s: a retired %s; failed %d request(s)", self.name, reason,
                          failed)
            return
        log.error("engine %s: %s; failed %d request(s); restarting it", self.name, reason,
                  failed)
        threading.Thread(target=self._restart, args=(reason,), name=f"restart-{self.name}",
                         daemon=True).start()

    def _restart(self, reason: str) -> None:
        delay, longest = self.restart_delays
        while True:
            time.sleep(delay)
            if self._closed:
                return
            started = time.monotonic()
            try:
                with self._swap_lock:  # never beside a change of adapter slots
                    worker = self._spawn(self._worker.adapters)
                    with self._lock:
                        closed = self._closed
                        if not closed:
                            self._worker, self._down = worker, None
                            self.restarts += 1
            except EngineError as exc:
                log.error("engine %s: restart failed: %s; next try in %.1f s", self.name, exc,
                          min(delay * 2, longest))
                self._down = f"{reason}; restarting failed: {exc}"
                delay = min(delay * 2, longest)
                continue
            if closed:  # closed while this one was loading
                self._stop_worker(worker)
                return
            log.info("engine %s: restarted in process %d (%.1f s)", self.name,
                     worker.process.pid, time.monotonic() - started)
            return

    def _stop_worker(self, worker: _Worker) -> None:
        """Ask an engine process to stop; kill it if it does not within 30 s. Its work folder
        goes once it has exited (its receiver may not have noticed yet)."""
        self._send(worker, Close())
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        workdirs.remove(worker.workdir)



def _check_draft(config: EngineConfig) -> None:
    """A draft model must be a prepared model, and cannot be combined with what changes the
    main model's vocabulary or decoding."""
    draft = config.draft
    if draft is None:
        return
    if draft.device:
        devices.check(draft.device)
    for needed in ("openvino_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml"):
        if not (draft.models_path / needed).is_file():
            raise EngineError(f"draft_models_path {draft.models_path} has no {needed}; prepare "
                              "the draft model with scripts/download_model.py")
    if config.prompt_lookup:
        raise EngineError("draft_models_path and plugin_config's prompt_lookup are two kinds of "
                          "speculative decoding; a model is served with one of them")
    if config.lora is not None:
        raise EngineError(f"draft_models_path: speculative decoding cannot serve LoRA adapters "
                          f"(model {config.models_path.name} has lora_dir or the server's "
                          "--lora_dir); serve it without one of them")


def _features(config: EngineConfig) -> str:
    """What the engine runs beyond plain continuous batching, for its load log line."""
    parts = ["a dynamic KV cache" if config.dynamic_cache
             else f"a {config.cache_size_gb:g} GB KV cache"]
    if config.draft is not None:
        draft = config.draft
        parts.append(f"speculative decoding with draft model {draft.models_path} on "
                     f"{(draft.device or config.device).upper()}"
                     + (" (EAGLE3)" if draft.eagle3 else ""))
    if config.cache_eviction is not None:
        eviction = config.cache_eviction
        parts.append(f"cache eviction (start {eviction.start_size}, recent "
                     f"{eviction.recent_size}, max {eviction.max_cache_size} tokens)")
    if config.sparse_attention is not None:
        parts.append(f"{config.sparse_attention.mode} sparse attention")
    return ", " + ", ".join(parts)


def _on_slot(token_ids: list[int], fields: dict[str, Any], offset: int
             ) -> tuple[list[int], dict[str, Any]]:
    """A request's prompt and stop tokens moved to a LoRA slot's block of the widened
    vocabulary (see ``engine.lora_graph``)."""
    fields = dict(fields)
    fields["eos_token_id"] = fields["eos_token_id"] + offset
    fields["stop_token_ids"] = {t + offset for t in fields["stop_token_ids"]}
    return [t + offset for t in token_ids], fields
