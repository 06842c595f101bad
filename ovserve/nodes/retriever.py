"""The retriever node: question -> embedding -> the closest chunks in the vector store.

In a RAG graph it takes an LLM request (``HTTP_REQUEST_PAYLOAD``), finds the ``top_k`` chunks
closest to the question (a chat request's last user message, or a completion's prompt), fills
the prompt template's ``{context}`` and ``{input}`` with them and passes the request on
(``HTTP_REQUEST_PAYLOAD`` out) with the chunks as its sources, which the LLM node returns beside
the answer. Alone, it is the KServe "vector store predictor": a BYTES ``question`` in,
``DOCUMENTS`` / ``SOURCES`` (BYTES) and ``SCORES`` (FP32) out.

With ``rerank_models_path`` set it reranks: the ``rerank_candidates`` closest chunks are scored
against the question by the rerank model (a cross-encoder, as ``RerankCalculatorOV`` uses) and
the best ``top_k`` go on, in the reranker's order; sources then carry ``rerank_score`` beside
the vector ``score``, and ``SCORES`` holds the rerank scores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ovserve.engine.embeddings import EmbeddingEngine
from ovserve.engine.rerank import RerankEngine
from ovserve.errors import InvalidInput, NodeError, ServableNotReady
from ovserve.graph.calculator import Calculator, LoadContext, NodeRun, Packet, RunContext
from ovserve.graph.config import node_options, parse_graph_file
from ovserve.graph.proto.retriever_calculator_pb2 import RetrieverCalculatorOptions
from ovserve.graph.spec import NodeSpec
from ovserve.nodes.embeddings import texts_of
from ovserve.nodes.options import model_problems, resolve
from ovserve.protocol.generation import REQUEST_TAG, GenerationRequest
from ovserve.protocol.tensor import Tensor, bytes_tensor
from ovserve.rag.model_id import EmbeddingModelInfo, embedding_model_info
from ovserve.rag.store import Hit, StoreConfig, VectorStore

DEFAULT_TEMPLATE = (
    "Answer the question using only the context below. If the context does not contain the "
    "answer, say that you do not know.\n\nContext:\n{context}\n\nQuestion: {input}")
TENSOR_OUTPUTS = ("DOCUMENTS", "SOURCES", "SCORES")

log = logging.getLogger(__name__)

_stores: dict[StoreConfig, VectorStore] = {}
_stores_lock = threading.Lock()


def shared_store(config: StoreConfig) -> VectorStore:
    """One ``VectorStore`` per store in this process (an embedded Chroma directory must have
    a single client: the retriever and the ingestion endpoint share it)."""
    with _stores_lock:
        store = _stores.get(config)
        if store is None:
            store = _stores[config] = VectorStore(config)
        return store


def _options(node: NodeSpec) -> RetrieverCalculatorOptions | None:
    options = node_options(node.config, RetrieverCalculatorOptions)
    return options if isinstance(options, RetrieverCalculatorOptions) else None


def embedding_model_of(graph_path: Path) -> Path | None:
    """The embedding model the graph's retriever node embeds questions with (its
    ``embedding_models_path``, resolved against the graph's folder), or None when it has no
    retriever: what scripts/ingest.py embeds the store with, so the two agree."""
    for node in parse_graph_file(graph_path).node:
        options = node_options(node, RetrieverCalculatorOptions)
        if (node.calculator == "RetrieverCalculator"
                and isinstance(options, RetrieverCalculatorOptions)
                and options.embedding_models_path):
            return resolve(options.embedding_models_path, graph_path.parent.resolve())
    return None


def question_of(request: GenerationRequest) -> str:
    if request.kind == "chat":
        user = [m for m in request.messages if m.get("role") == "user"]
        question = str(user[-1].get("content") or "") if user else ""
    else:
        question = request.prompt or ""
    if not question.strip():
        raise InvalidInput("messages: the question (the last user message) is empty"
                           if request.kind == "chat" else "prompt: the question is empty")
    return question


class RetrieverCalculator(Calculator):
    name = "RetrieverCalculator"
    input_tags = frozenset({REQUEST_TAG, "QUESTION"})
    output_tags = frozenset({REQUEST_TAG, *TENSOR_OUTPUTS})

    engine: EmbeddingEngine
    store: VectorStore
    embedding_model: EmbeddingModelInfo
    reranker: RerankEngine | None = None

    @classmethod
    def check(cls, node: NodeSpec, base_path: Path) -> list[str]:
        options = _options(node)
        if options is None or not options.embedding_models_path:
            return ["node_options has no [type.googleapis.com/mediapipe."
                    "RetrieverCalculatorOptions] with an embedding_models_path"]
        problems = model_problems("embedding_models_path",
                                  resolve(options.embedding_models_path, base_path),
                                  "scripts/download_model.py --model all-minilm-l6-v2")
        inputs = [r.tag for r in node.inputs]
        if REQUEST_TAG not in inputs and "QUESTION" not in inputs:
            problems.append(f"no {REQUEST_TAG} or QUESTION input stream")
        template = options.prompt_template or DEFAULT_TEMPLATE
        for field in ("{context}", "{input}"):
            if field not in template:
                problems.append(f"prompt_template has no {field}")
        if options.top_k < 1:
            problems.append("top_k must be at least 1")
        if options.rerank_models_path:
            problems += model_problems("rerank_models_path",
                                       resolve(options.rerank_models_path, base_path),
                                       "scripts/make_reranker.py")
            if options.rerank_candidates < options.top_k:
                problems.append(f"rerank_candidates ({options.rerank_candidates}) must be at "
                                f"least top_k ({options.top_k})")
        return problems

    def __init__(self, node: NodeSpec, context: LoadContext) -> None:
        super().__init__(node, context)
        options = _options(node)
        assert options is not None  # checked by validation
        self.options = options
        self.template = options.prompt_template or DEFAULT_TEMPLATE
        self.embedding_path = resolve(options.embedding_models_path, context.base_path)
        self.rerank_path = (resolve(options.rerank_models_path, context.base_path)
                            if options.rerank_models_path else None)
        self.store_config = StoreConfig(
            path=None if options.chroma_url else resolve(options.store_path, context.base_path),
            url=options.chroma_url, collection=options.collection)
        self.ports = {r.tag: r.port for r in node.outputs}
        self.request_port = next(r.port for r in node.inputs if r.tag in (REQUEST_TAG,
                                                                           "QUESTION"))

    async def load(self) -> None:
        context = self.context

        def acquire() -> tuple[EmbeddingEngine, VectorStore, EmbeddingModelInfo]:
            engine = context.engines.acquire_embeddings(
                context.servable, self.embedding_path, device=self.options.target_device,
                pooling="MEAN", normalize=True)
            store = shared_store(self.store_config)
            model = embedding_model_info(self.embedding_path)
            others = {m or "an unrecorded model": n
                      for m, n in store.embedding_models().items() if m != model.id}
            if others:
                log.warning("%s: the store at %s holds chunks embedded by %s, not by %s "
                            "(%s): re-ingest (scripts/ingest.py --embedding_model %s) to embed "
                            "them again", context.servable, store.where, others, model.id,
                            self.embedding_path, self.embedding_path)
            return engine, store, model

        self.engine, self.store, self.embedding_model = \
            await asyncio.get_running_loop().run_in_executor(context.executor, acquire)
        if self.rerank_path is not None:
            path = self.rerank_path
            self.reranker = await asyncio.get_running_loop().run_in_executor(
                context.executor, lambda: context.engines.acquire_rerank(context.servable, path))

    def store_info(self) -> dict[str, Any]:
        """What the store was built with (blocking): the graph's embedding model, how many
        chunks each model embedded, and the reranker's folder name (None: no rerank stage)."""
        return {"embedding_model": self.embedding_model.as_dict(),
                "embedded_with": self.store.embedding_models(),
                "reranker": self.rerank_path.name if self.rerank_path is not None else None}

    async def retrieve(self, question: str) -> list[Hit]:
        """The chunks for ``question``, best first (reranked when a reranker is set; then
        each ``Hit.score`` is still the vector store's; ``retrieve_scored`` has both)."""
        return [hit for hit, _ in await self.retrieve_scored(question)]

    async def retrieve_scored(self, question: str) -> list[tuple[Hit, float | None]]:
        """The chunks for ``question``, best first, each with its rerank score (None when
        the graph does not rerank)."""
        try:
            vector = (await self.engine.aembed([question])).vectors[0]
        except InvalidInput as exc:
            raise InvalidInput(f"the question cannot be searched with: {exc}") from exc
        loop = asyncio.get_running_loop()
        wanted = self.options.top_k
        if self.reranker is not None:
            wanted = max(self.options.rerank_candidates, wanted)
        hits = await loop.run_in_executor(self.context.executor, self.store.query,
                                          np.asarray(vector).tolist(), wanted)
        if not hits:
            raise ServableNotReady(f"servable {self.context.servable}: the document store is "
                                   "empty; ingest documents first (scripts/ingest.py or the "
                                   "web page's upload)")
        if self.reranker is None:
            return [(hit, None) for hit in hits]
        scores = (await self.reranker.arerank(question, [h.text for h in hits])).scores
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))[:self.options.top_k]
        return [(hits[i], scores[i]) for i in order]

    def augment(self, request: GenerationRequest, question: str,
                scored: list[tuple[Hit, float | None]]) -> GenerationRequest:
        context = "\n\n".join(f"[{n}] ({hit.source})\n{hit.text}"
                              for n, (hit, _) in enumerate(scored, 1))
        prompt = self.template.replace("{context}", context).replace("{input}", question)
        sources = tuple({"source": h.source, "section": h.section, "position": h.position,
                         "score": round(h.score, 4), "text": h.text,
                         **({} if rerank is None else {"rerank_score": round(rerank, 4)})}
                        for h, rerank in scored)
        if request.kind == "chat":
            messages = list(request.messages)
            last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
            messages[last] = {**messages[last], "content": prompt}
            return dataclasses.replace(request, messages=messages, sources=sources)
        return dataclasses.replace(request, prompt=prompt, sources=sources)

    def open_run(self, context: RunContext) -> NodeRun:
        return _RetrieverRun(self, context)


class _RetrieverRun(NodeRun):
    def __init__(self, calc: RetrieverCalculator, context: RunContext) -> None:
        self.calc = calc
        self.context = context

    async def process(self, timestamp: int, inputs: dict[str, Packet]) -> None:
        calc = self.calc
        payload = inputs[calc.request_port].payload
        if isinstance(payload, GenerationRequest):
            if REQUEST_TAG not in calc.ports:
                raise NodeError(calc.node.name, f"has no {REQUEST_TAG} output for requests")
            question = question_of(payload)
            scored = await calc.retrieve_scored(question)
            self.context.emit(calc.ports[REQUEST_TAG],
                              Packet(timestamp, calc.augment(payload, question, scored)))
        elif isinstance(payload, Tensor):
            texts = texts_of(payload)
            if len(texts) != 1 or not texts[0].strip():
                raise InvalidInput(f"input {payload.name!r}: one non-empty question")
            scored = await calc.retrieve_scored(texts[0])
            hits = [hit for hit, _ in scored]
            scores = [hit.score if rerank is None else rerank for hit, rerank in scored]
            outputs: dict[str, Any] = {
                "DOCUMENTS": bytes_tensor("documents", [h.text for h in hits]),
                "SOURCES": bytes_tensor("sources", [h.source for h in hits]),
                "SCORES": Tensor("scores", np.array(scores, np.float32)
                                 .tobytes(), shape=(len(hits),), datatype="FP32")}
            for tag, tensor in outputs.items():
                if tag in calc.ports:
                    self.context.emit(calc.ports[tag], Packet(timestamp, tensor))
        else:
            raise NodeError(calc.node.name, f"expected a question, got {type(payload).__name__}")
