"""Text embeddings on openvino-genai's ``TextEmbeddingPipeline``, shared through the engine
registry like the LLM engines.

The pipeline releases the GIL while it runs, so it runs in this process, on one worker thread
that batches: the texts of every request waiting when it becomes free go through the pipeline
in one call (up to ``max_batch``), and each request gets its own rows back. Concurrent small
requests therefore cost about what one large one costs.
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

log = logging.getLogger(__name__)

POOLING = ("CLS", "MEAN", "LAST")


@dataclass(frozen=True)
class EmbeddingConfig:
    """How an embedding engine is built (two graphs on one model must agree)."""

    models_path: Path
    device: str = "CPU"
    pooling: str = "MEAN"  # CLS, MEAN or LAST
    normalize: bool = True
    #: the most tokens an input may have (0: the model's own limit)
    max_length: int = 0
    #: cut longer inputs to max_length (OVMS's ``truncate``); otherwise they are refused
    truncate: bool = False
    plugin_config: dict[str, Any] = field(default_factory=dict)
    max_batch: int = 256


@dataclass(frozen=True)
class Embeddings:
    """One request's vectors ([texts, dimensions], float32) and its token count."""

    vectors: np.ndarray
    tokens: int


class EmbeddingEngine:
    """Thread-safe: ``embed`` from any thread, ``aembed`` from an event loop."""

    def __init__(self, config: EmbeddingConfig) -> None:
        import openvino_genai as ov_genai

        if config.pooling.upper() not in POOLING:
            raise EngineError(f"pooling {config.pooling!r} is not one of {', '.join(POOLING)}")
        check_prepared(config.models_path, config.device,
                       "scripts/download_model.py --model all-minilm-l6-v2")
        self.config = config
        self.name = config.models_path.name
        pipeline_config = ov_genai.TextEmbeddingPipeline.Config()
        pipeline_config.pooling_type = getattr(ov_genai.TextEmbeddingPipeline.PoolingType,
                                               config.pooling.upper())
        pipeline_config.normalize = config.normalize
        self.max_length = config.max_length or model_max_length(config.models_path)
        pipeline_config.max_length = self.max_length
        try:
            self.pipeline = ov_genai.TextEmbeddingPipeline(
                str(config.models_path), config.device.upper(), pipeline_config,
                **model_properties(config.plugin_config))
            self.tokenizer = ov_genai.Tokenizer(str(config.models_path))
            self.dimensions = len(self.pipeline.embed_query("warm up"))
        except Exception as exc:
            raise EngineError(f"loading the embedding model {config.models_path} failed: "
                              f"{error_reason(exc)}") from exc
        self._tokenizer_lock = threading.Lock()
        self._queue: queue.Queue[tuple[list[str], int, Future[Embeddings]] | None] = \
            queue.Queue()
        self._closed = False
        self.total_requests = 0
        self.total_texts = 0
        self.total_tokens = 0
        self._worker = threading.Thread(target=self._run, name=f"embeddings-{self.name}",
                                        daemon=True)
        self._worker.start()
        log.info("embeddings: loaded %s on %s (%d dimensions, %s pooling, up to %d tokens)",
                 config.models_path, config.device, self.dimensions, config.pooling,
                 self.max_length)

    @property
    def ready(self) -> bool:
        return not self._closed

    def embed(self, texts: list[str]) -> Embeddings:
        """Blocking: the vectors of ``texts`` (raises ``InvalidInput`` for bad input)."""
        return self._submit(texts).result()

    async def aembed(self, texts: list[str]) -> Embeddings:
        return await asyncio.wrap_future(self._submit(texts))

    def _submit(self, texts: list[str]) -> Future[Embeddings]:
        if self._closed:
            raise EngineUnavailable(f"embedding engine {self.name} was shut down")
        if not texts:
            raise InvalidInput("input: give at least one text")
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInput(f"input[{index}]: must be a non-empty string")
        counts = self._token_counts(texts)
        if not self.config.truncate:
            for index, count in enumerate(counts):
                if count > self.max_length:
                    raise InvalidInput(
                        f"input[{index}]: {count} tokens is more than the model's "
                        f"{self.max_length} (the graph's truncate option cuts such inputs)")
        future: Future[Embeddings] = Future()
        self._queue.put((texts, sum(min(n, self.max_length) for n in counts), future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            count = len(item[0])
            while count < self.config.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
                count += len(more[0])
            self._embed_batch(batch)

    def _embed_batch(self, batch: list[tuple[list[str], int, Future[Embeddings]]]) -> None:
        texts = [text for request, _, _ in batch for text in request]
        try:
            vectors = np.asarray(self.pipeline.embed_documents(texts), dtype=np.float32)
        except Exception as exc:  # every request of the batch fails, the engine goes on
            log.exception("embeddings: a batch of %d texts failed", len(texts))
            error = EngineError(f"embedding failed: {error_reason(exc)}")
            for _, _, future in batch:
                future.set_exception(error)
            return
        start = 0
        for request, tokens, future in batch:
            end = start + len(request)
            self.total_requests += 1
            self.total_texts += len(request)
            self.total_tokens += tokens
            future.set_result(Embeddings(vectors[start:end], tokens))
            start = end

    def _token_counts(self, texts: list[str]) -> list[int]:
        with self._tokenizer_lock:
            encoded = self.tokenizer.encode(texts, add_special_tokens=True)
            lengths = np.asarray(encoded.attention_mask.data).sum(axis=1)
        return [int(n) for n in lengths]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
