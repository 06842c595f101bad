"""The vector store: Chroma, embedded (``PersistentClient``, the default) or a Chroma server
(``HttpClient``, to scale out). Embeddings are always passed in: Chroma's own default embedding
function would download a model, so the collection is created without one."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovserve.errors import DependencyUnavailable, error_reason

log = logging.getLogger(__name__)

#: chunk metadata naming the embedding model that made its vector (``rag.model_id``)
EMBEDDED_BY = "embedding_model"


class VectorStoreError(DependencyUnavailable):
    """The vector store cannot be reached or refused an operation."""


@dataclass(frozen=True)
class Hit:
    text: str
    source: str
    position: int
    score: float  # cosine similarity
    section: str = ""


@dataclass(frozen=True)
class StoreConfig:
    """``path`` for an embedded store, or ``url`` (http://host:port) of a Chroma server."""

    path: Path | None = None
    url: str = ""
    collection: str = "documents"


class VectorStore:
    def __init__(self, config: StoreConfig) -> None:
        import chromadb
        from chromadb.config import Settings

        self.config = config
        self._lock = threading.Lock()
        settings = Settings(anonymized_telemetry=False)
        try:
            if config.url:
                from urllib.parse import urlparse

                url = urlparse(config.url)
                self.client: Any = chromadb.HttpClient(
                    host=url.hostname or "localhost", port=url.port or 8000,
                    ssl=url.scheme == "https", settings=settings)
            else:
                path = config.path or Path("data/chroma")
                path.mkdir(parents=True, exist_ok=True)
                self.client = chromadb.PersistentClient(path=str(path), settings=settings)
            self.collection = self.client.get_or_create_collection(
                config.collection, embedding_function=None, metadata={"hnsw:space": "cosine"})
        except Exception as exc:
            raise VectorStoreError(f"vector store {self.where}: {error_reason(exc)}") from exc
        log.info("vector store: collection %r at %s (%d chunks)", config.collection,
                 self.where, self.count())

    @property
    def where(self) -> str:
        return self.config.url or str(self.config.path)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._lock:
                return fn(*args, **kwargs)
        except Exception as exc:
            raise VectorStoreError(f"vector store {self.where}: {what} failed: "
                                   f"{error_reason(exc)}") from exc

    def count(self) -> int:
        return int(self._call("count", self.collection.count))

    def existing(self, ids: list[str], model: str = "") -> set[str]:
        """Which of ``ids`` the store holds (embedded by ``model``, when given)."""
        if not ids:
            return set()
        if not model:
            return set(self._call("get", self.collection.get, ids=ids, include=[])["ids"])
        found = self._call("get", self.collection.get, ids=ids, include=["metadatas"])
        return {id_ for id_, meta in zip(found["ids"], found["metadatas"] or [], strict=True)
                if (meta or {}).get(EMBEDDED_BY) == model}

    def embedding_models(self) -> dict[str, int]:
        """How many chunks each embedding model embedded ("" for chunks that do not say)."""
        found = self._call("get", self.collection.get, include=["metadatas"])
        counts: dict[str, int] = {}
        for meta in found["metadatas"] or []:
            model = str((meta or {}).get(EMBEDDED_BY, ""))
            counts[model] = counts.get(model, 0) + 1
        return counts

    def stale(self, model: str) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """The ids, texts and metadata of every chunk not embedded by ``model``."""
        found = self._call("get", self.collection.get, include=["documents", "metadatas"])
        rows = [(id_, text, dict(meta or {})) for id_, text, meta in zip(
            found["ids"], found["documents"] or [], found["metadatas"] or [], strict=True)
            if (meta or {}).get(EMBEDDED_BY) != model]
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def ids_of(self, source: str) -> set[str]:
        found = self._call("get", self.collection.get, where={"source": source}, include=[])
        return set(found["ids"])

    def upsert(self, ids: list[str], embeddings: Any, texts: list[str],
               metadatas: list[dict[str, Any]]) -> None:
        self._call("upsert", self.collection.upsert, ids=ids, embeddings=embeddings,
                   documents=texts, metadatas=metadatas)

    def delete(self, ids: list[str]) -> None:
        if ids:
            self._call("delete", self.collection.delete, ids=ids)

    def query(self, embedding: Any, k: int) -> list[Hit]:
        if self.count() == 0:
            return []
        found = self._call("query", self.collection.query, query_embeddings=[embedding],
                           n_results=k, include=["documents", "metadatas", "distances"])
        return [Hit(text, str(meta.get("source", "")), int(meta.get("position", 0)),
                    1.0 - float(distance), str(meta.get("section", "")))
                for text, meta, distance in zip(found["documents"][0], found["metadatas"][0],
                                                found["distances"][0], strict=True)]

    def sources(self) -> dict[str, int]:
        """Each source's number of chunks."""
        found = self._call("get", self.collection.get, include=["metadatas"])
        counts: dict[str, int] = {}
        for meta in found["metadatas"] or []:
            source = str(meta.get("source", ""))
            counts[source] = counts.get(source, 0) + 1
        return counts

