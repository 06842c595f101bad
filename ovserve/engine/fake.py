"""A deterministic fake engine for fast tests of nodes, serving and transports (no model).

It follows the engine interface exactly: the same request bookkeeping, readers and errors as
``OpenVINOEngine``, the same ``prepare`` precedence (``engine.limits``). Text is made of words
``w0 w1 ...``; a request ends by itself after ``natural_length`` tokens ("stop") unless
``ignore_eos`` or ``min_tokens`` says otherwise, and at ``max_new_tokens`` ("length").
One stepper thread emits one token per running request every ``step_seconds``; with
``max_running`` at most that many run (the first to come), the others wait, as in a batch of
``max_num_seqs``. ``pause()`` holds every step until ``resume()``.

Fault injection: ``crash()`` fails every running request as a dead engine process does, then
the engine is unavailable for ``restart_seconds`` and comes back (``restarts`` + 1);
``fail_next`` makes the next request fail after that many tokens.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ovserve.engine.adapters import AdapterSource
from ovserve.engine.base import Prepared, SamplingParams
from ovserve.engine.limits import GenerationLimits, Prompt, max_new_tokens, render_prompt
from ovserve.engine.requests import EngineBase, Output, StepTimes
from ovserve.errors import AdapterConflict, AdapterNotFound, EngineFailure, EngineUnavailable


class _Running:
    def __init__(self, prepared: Prepared, fail_after: int | None) -> None:
        self.fields = prepared.fields
        self.produced = 0
        self.fail_after = fail_after


class FakeEngine(EngineBase):
    def __init__(self, name: str = "fake", *, context_length: int = 512,
                 natural_length: int = 5, step_seconds: float = 0.002,
                 restart_seconds: float = 0.2, max_running: int | None = None,
                 max_loras: int = 0) -> None:
        super().__init__(name)
        self.max_running = max_running
        self.max_loras = max_loras
        self._paused = False
        self.context_length = context_length
        self.natural_length = natural_length
        self.step_seconds = step_seconds
        self.restart_seconds = restart_seconds
        self.fail_next: int | None = None
        self.adapter_sources: dict[str, AdapterSource] = {}
        self._down: str | None = None
        self._running: dict[int, _Running] = {}
        self._wake = threading.Condition()
        self._stepper = threading.Thread(target=self._run, name=f"fake-engine-{name}",
                                         daemon=True)
        self._stepper.start()

    # -- the interface ------------------------------------------------------------------------

    def prepare(self, prompt: Prompt, params: SamplingParams,
                limits: GenerationLimits | None = None, adapter: str | None = None) -> Prepared:
        if adapter is not None and adapter not in self.adapter_sources:
            raise AdapterNotFound(f"The model `{adapter}` does not exist")
        text = render_prompt(prompt, params, "fake", _template)
        token_ids = [len(word) for word in text.split()]
        max_new = max_new_tokens(params, limits or GenerationLimits(), len(token_ids),
                                 self.context_length, None)
        return Prepared(token_ids, {"max_new_tokens": max_new, "ignore_eos": params.ignore_eos,
                                    "min_new_tokens": params.min_tokens}, adapter)

    def token_texts(self, token_ids: list[int]) -> list[str]:
        return [f"w{i}" for i in token_ids]

    #: a ChatML template that renders tools (the chat layer's tests read its prompts)
    chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                     "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>"
                     "assistant\n{% endif %}")

    def render_chat(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
                    chat_template: str, tools: list[dict[str, Any]] | None,
                    extra_context: dict[str, Any]) -> str:
        """Not the template: each message as ``<role> content``, the tools' names and the
        template variables, so tests can see what reached the template."""
        text = "".join(f"<{m.get('role')}> {m.get('content')} " for m in messages)
        if tools:
            text += "<tools> " + " ".join(t["function"]["name"] for t in tools) + " "
        text += "".join(f"<{k}={v}> " for k, v in sorted(extra_context.items()))
        return text + ("<assistant>" if add_generation_prompt else "")

    def tokenize(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [len(word) for word in text.split()]

    def detokenize(self, token_ids: list[int]) -> str:
        return " ".join(f"w{i}" for i in token_ids)

    def adapters(self) -> list[AdapterSource]:
        return sorted(self.adapter_sources.values(), key=lambda a: a.name)

    def find_adapter(self, name: str) -> AdapterSource | None:
        return self.adapter_sources.get(name)

    def load_adapter(self, name: str, path: Path) -> AdapterSource:
        """Registers ``name`` (no files are read: a fake)."""
        if name in self.adapter_sources:
            raise AdapterConflict(f"lora_name {name!r}: an adapter of that name is already "
                                  "loaded")
        self.adapter_sources[name] = AdapterSource(name, path)
        return self.adapter_sources[name]

    def unload_adapter(self, name: str) -> None:
        if self.adapter_sources.pop(name, None) is None:
            raise AdapterNotFound(f"lora_name {name!r}: no adapter of that name is loaded")

    def _unavailable(self) -> str | None:
        return self._down

    def _start(self, request_id: int, prepared: Prepared) -> None:
        fail_after, self.fail_next = self.fail_next, None
        with self._wake:
            self._running[request_id] = _Running(prepared, fail_after)
            self._wake.notify()

    def _cancel(self, request_id: int) -> None:
        with self._wake:
            if self._running.pop(request_id, None) is not None:
                self._deliver([Output(request_id, "", [], "abort", done=True)])

    def close(self) -> None:
        with self._lock:
            self._closed = True
        with self._wake:
            self._running.clear()
            self._wake.notify()
        self._fail_all(EngineUnavailable(f"engine {self.name} was shut down"))

    # -- fault injection ----------------------------------------------------------------------

    def crash(self) -> None:
        """As if the engine process died: fail everything, restart after a while."""
        reason = "the engine process exited (code -9)"
        with self._wake:
            self._running.clear()
            self._down = f"{reason}; restarting it"
        self._fail_all(EngineFailure(f"engine {self.name}: {reason}"))
        timer = threading.Timer(self.restart_seconds, self._restarted)
        timer.daemon = True
        timer.start()

    def pause(self) -> None:
        """Hold every step (requests stay where they are) until ``resume()``."""
        with self._wake:
            self._paused = True

    def resume(self) -> None:
        with self._wake:
            self._paused = False
            self._wake.notify()

    def _restarted(self) -> None:
        self._down = None
        self.restarts += 1

    # -- stepping -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            with self._wake:
                while (not self._running or self._paused) and not self._closed:
                    self._wake.wait()
                started = time.monotonic()
                batch = list(self._running.items())[:self.max_running]
                outputs = [self._advance(request_id, running) for request_id, running in batch]
                for output in outputs:
                    if output.done:
                        self._running.pop(output.request_id, None)
                self._deliver(outputs, StepTimes(started, time.monotonic(),
                                                 tuple(request_id for request_id, _ in batch)))
            time.sleep(self.step_seconds)

    def _advance(self, request_id: int, running: _Running) -> Output:
        fields: dict[str, Any] = running.fields
        if running.fail_after is not None and running.produced >= running.fail_after:
            return Output(request_id, "", [], done=True, error="a generation step failed")
        token = running.produced
        running.produced += 1
        text = f" w{token}" if token else f"w{token}"
        natural_end = (running.produced >= self.natural_length and not fields["ignore_eos"]
                       and running.produced >= fields["min_new_tokens"])
        if running.produced >= fields["max_new_tokens"]:
            return Output(request_id, text, [token], "length", done=True)
        if natural_end:
            return Output(request_id, text, [token], "stop", done=True)
        return Output(request_id, text, [token])


def _template(messages: list[dict[str, Any]]) -> str:
    return "".join(f"<{m.get('role')}> {m.get('content')} " for m in messages) + "<assistant>"
