"""Reranking on openvino-genai's ``TextRerankPipeline`` (cross-encoders, and Qwen3-Reranker-
style decoders), shared through the engine registry like the embedding engines.

A request is a query and its documents; the answer is one relevance score per document, in
the documents' order. The pipeline releases the GIL while it runs; requests run one at a time
on one worker thread (each is already a batch: its documents go through the model together).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ovserve.engine.pipelines import (
    check_prepared,
    error_reason,
    model_max_length,
    model_properties,
)
from ovserve.errors import EngineError, EngineUnavailable, InvalidInput
from ovserve.protocol.rerank import RerankResult

log = logging.getLogger(__name__)

#: OVMS's default of ``max_allowed_chunks`` (from Cohere's API documentation)
MAX_ALLOWED_CHUNKS = 10000


@dataclass(frozen=True)
class RerankConfig:
    """How a rerank engine is built (two graphs on one model must agree)."""

    models_path: Path
    device: str = "CPU"
    #: the most tokens a (query, document) pair may have (0: the model's own limit); longer
    #: pairs are cut to it (the document loses its end)
    max_length: int = 0
    #: the most documents one request may rank (OVMS's ``max_allowed_chunks``)
    max_documents: int = MAX_ALLOWED_CHUNKS
    plugin_config: dict[str, Any] = field(default_factory=dict)


class RerankEngine:
    """Thread-safe: ``rerank`` from any thread, ``arerank`` from an event loop."""

    def __init__(self, config: RerankConfig) -> None:
        import openvino_genai as ov_genai

        check_prepared(config.models_path, config.device, "scripts/make_reranker.py")
        if config.max_documents < 1:
            raise EngineError("max_allowed_chunks must be at least 1")
        self.config = config
        self.name = config.models_path.name
        self.max_length = config.max_length or model_max_length(config.models_path)
        pipeline_config = ov_genai.TextRerankPipeline.Config()
        pipeline_config.top_n = config.max_documents  # every score: ordering is ours
        pipeline_config.max_length = self.max_length
        try:
            self.pipeline = ov_genai.TextRerankPipeline(
                str(config.models_path), config.device.upper(), pipeline_config,
                **model_properties(config.plugin_config))
            self.tokenizer = ov_genai.Tokenizer(str(config.models_path))
            self.pipeline.rerank("warm up", ["warm up"])
        except Exception as exc:
            raise EngineError(f"loading the rerank model {config.models_path} failed: "
                              f"{error_reason(exc)}") from exc
        self._tokenizer_lock = threading.Lock()
        self._pairs = True  # the tokenizer takes (query, document) pairs
        self._queue: queue.Queue[tuple[str, list[str], Future[RerankResult]] | None] = \
            queue.Queue()
        self._closed = False
        self.total_requests = 0
        self.total_documents = 0
        self._worker = threading.Thread(target=self._run, name=f"rerank-{self.name}",
                                        daemon=True)
        self._worker.start()
        log.info("rerank: loaded %s on %s (up to %d tokens a pair, %d documents a request)",
                 config.models_path, config.device, self.max_length, config.max_documents)

    @property
    def ready(self) -> bool:
        return not self._closed

    def rerank(self, query: str, documents: list[str]) -> RerankResult:
        """Blocking: a score per document (raises ``InvalidInput`` for bad input)."""
        return self._submit(query, documents).result()

    async def arerank(self, query: str, documents: list[str]) -> RerankResult:
        return await asyncio.wrap_future(self._submit(query, documents))

    def _submit(self, query: str, documents: list[str]) -> Future[RerankResult]:
        if self._closed:
            raise EngineUnavailable(f"rerank engine {self.name} was shut down")
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query: must be a non-empty string", "query")
        if len(documents) > self.config.max_documents:
            raise InvalidInput(f"documents: {len(documents)} documents is more than this "
                               f"model's max_allowed_chunks ({self.config.max_documents})",
                               "documents")
        for index, document in enumerate(documents):
            if not isinstance(document, str):
                raise InvalidInput(f"documents[{index}]: must be a string", "documents")
        future: Future[RerankResult] = Future()
        if not documents:
            future.set_result(RerankResult([], 0))
            return future
        self._queue.put((query, documents, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            query, documents, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                ranked = self.pipeline.rerank(query, documents)
                scores = [0.0] * len(documents)
                for index, score in ranked:
                    scores[index] = float(score)
                tokens = self._token_count(query, documents)
            except Exception as exc:  # this request fails, the engine goes on
                log.exception("rerank: a request of %d documents failed", len(documents))
                future.set_exception(EngineError(
                    f"reranking failed: {error_reason(exc)}"))
                continue
            self.total_requests += 1
            self.total_documents += len(documents)
            future.set_result(RerankResult(scores, tokens))

    def _token_count(self, query: str, documents: list[str]) -> int:
        """The tokens of the (query, document) pairs, each cut to ``max_length`` (a tokenizer
        converted without pair input: the query's and the document's own counts added)."""
        with self._tokenizer_lock:
            if self._pairs:
                try:
                    encoded = self.tokenizer.encode([query] * len(documents), documents,
                                                    add_special_tokens=True)
                    lengths = np.asarray(encoded.attention_mask.data).sum(axis=1)
                    return int(np.minimum(lengths, self.max_length).sum())
                except RuntimeError:
                    self._pairs = False
            encoded = self.tokenizer.encode([query, *documents], add_special_tokens=True)
            counts = np.asarray(encoded.attention_mask.data).sum(axis=1)
        return int(np.minimum(counts[0] + counts[1:], self.max_length).sum())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
