"""The engine interface every layer above uses: prepare a request, submit it, read its typed
output as it is produced (the stream raises an ``EngineError`` subclass on failure), abort it,
close the engine, read its stats.

``OpenVINOEngine`` (``engine.client``) is the real engine; ``FakeEngine`` (``engine.fake``) is a
deterministic stand-in for fast tests of nodes, serving and transports. Both build on
``engine.requests.EngineBase``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ovserve.engine.adapters import AdapterSource
from ovserve.engine.base import EngineStats, Prepared, SamplingParams
from ovserve.engine.limits import GenerationLimits, Prompt
from ovserve.engine.requests import Batch, Generation


class Engine(Protocol):
    """What nodes, handlers and transports may rely on. Thread-safe: ``submit`` and
    ``submit_batch`` from any thread, ``submit_async`` from an event loop."""

    name: str
    context_length: int

    @property
    def ready(self) -> bool:
        """False while the engine cannot take requests (restarting, closed)."""

    def prepare(self, prompt: Prompt, params: SamplingParams,
                limits: GenerationLimits | None = None, adapter: str | None = None) -> Prepared:
        """Apply the chat template, tokenize, decide limits, check everything (raises
        ``InvalidInput``): the one place where a request's generation settings are decided.
        ``adapter`` names a LoRA adapter to run the request on (``AdapterNotFound`` if none)."""

    def token_texts(self, token_ids: list[int]) -> list[str]:
        """Each token's own text (logprobs name their tokens)."""

    @property
    def chat_template(self) -> str:
        """The model's chat template ("" when it has none)."""

    def render_chat(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
                    chat_template: str, tools: list[dict[str, Any]] | None,
                    extra_context: dict[str, Any]) -> str:
        """Messages (and tools, template variables) through ``chat_template``."""

    def tokenize(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """``text``'s token ids."""

    def detokenize(self, token_ids: list[int]) -> str:
        """The text of ``token_ids``."""

    def adapters(self) -> list[AdapterSource]:
        """The LoRA adapters the engine serves, by name."""

    def find_adapter(self, name: str) -> AdapterSource | None:
        """The LoRA adapter ``name`` (its folders re-scanned on a miss), or None."""

    def load_adapter(self, name: str, path: Path) -> AdapterSource:
        """Add a LoRA adapter (``AdapterError`` / ``AdapterConflict`` when it cannot)."""

    def unload_adapter(self, name: str) -> None:
        """Remove a LoRA adapter; requests running on it finish (``AdapterNotFound``)."""

    def submit(self, prepared: Prepared) -> Generation:
        """Queue a request for blocking reading (``Generation.deltas()``)."""

    def submit_batch(self, prepared: list[Prepared]) -> Batch:
        """Queue several requests read as one stream of updates (``Batch.updates()``)."""

    def submit_async(self, prepared: Prepared, n: int = 1) -> list[Generation]:
        """Queue ``n`` generations of one request for ``Generation.adeltas()``."""

    def stats(self) -> EngineStats: ...

    def end_requests(self, reason: str) -> int:
        """End every active request with EngineUnavailable(``reason``); free the engine."""

    def close(self) -> None: ...
