"""Ingestion: documents -> chunks -> embeddings -> the vector store, embedding only what
changed. Per document, new chunks are embedded first and written in one upsert, then the
chunks it no longer has are deleted: a failure leaves the store as it was for that document."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ovserve.errors import InvalidInput
from ovserve.rag.chunking import SUFFIXES, chunk_document, read_text
from ovserve.rag.store import EMBEDDED_BY, VectorStore

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]


@dataclass
class IngestReport:
    documents: int = 0
    added: int = 0  # chunks embedded and written
    unchanged: int = 0
    removed: int = 0  # chunks of changed documents that are gone
    reembedded: int = 0  # chunks embedded again because another model had embedded them
    skipped: dict[str, str] = field(default_factory=dict)  # document -> why

    def as_dict(self) -> dict[str, object]:
        return {"documents": self.documents, "added": self.added, "unchanged": self.unchanged,
                "removed": self.removed, "reembedded": self.reembedded,
                "skipped": self.skipped}


def documents_in(folder: Path) -> list[Path]:
    """Every .md, .txt and .pdf file under ``folder``, sorted (hidden folders skipped)."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder")
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def ingest_document(store: VectorStore, embed: Embed, name: str, data: bytes,
                    report: IngestReport, batch: int = 64, model: str = "") -> None:
    """Ingest one document's bytes as source ``name`` (``InvalidInput`` if unreadable).
    ``model`` (``rag.model_id``) is recorded on each chunk; a chunk another model embedded
    counts as new."""
    chunks = chunk_document(name, read_text(name, data))
    if not chunks:
        raise InvalidInput(f"{name}: no text")
    ids = [c.id for c in chunks]
    have = store.existing(ids, model)
    new = [c for c in chunks if c.id not in have]
    vectors = [embed([c.text for c in new[i:i + batch]]) for i in range(0, len(new), batch)]
    if new:
        marked = {EMBEDDED_BY: model} if model else {}
        store.upsert([c.id for c in new], np.concatenate(vectors).tolist(),
                     [c.text for c in new], [{**c.metadata, **marked} for c in new])
    stale = sorted(store.ids_of(name) - set(ids))
    store.delete(stale)
    report.documents += 1
    report.added += len(new)
    report.unchanged += len(chunks) - len(new)
    report.removed += len(stale)


def ingest_paths(store: VectorStore, embed: Embed, root: Path, paths: Iterable[Path],
                 progress: Callable[[str], None] | None = None, model: str = ""
                 ) -> IngestReport:
    """Ingest files under ``root`` (sources are named relative to it); unreadable files are
    skipped and reported, the others go on. With ``model``, chunks another embedding model
    embedded are re-embedded first (``reembed``)."""
    report = IngestReport()
    if model:
        report.reembedded = reembed(store, embed, model)
    for path in paths:
        name = path.relative_to(root).as_posix()
        try:
            ingest_document(store, embed, name, path.read_bytes(), report, model=model)
        except InvalidInput as exc:
            report.skipped[name] = str(exc)
            log.warning("ingest: skipped %s", exc)
        if progress is not None:
            progress(name)
    return report


def reembed(store: VectorStore, embed: Embed, model: str, batch: int = 64,
            progress: Callable[[int, int], None] | None = None) -> int:
    """Embed again, with ``model``, every chunk of the store that another model (or an
    unrecorded one) embedded, from the text the store keeps; returns how many. Vectors of two
    models do not compare, so a store whose embedding model changed is rebuilt whole (in
    batches: an interruption leaves the rest to the next run). ``progress(done, total)``."""
    ids, texts, metadatas = store.stale(model)
    if ids:
        log.info("ingest: re-embedding %d chunks with %s (embedded by %s)", len(ids), model,
                 ", ".join(sorted({str(m.get(EMBEDDED_BY) or "an unrecorded model")
                                   for m in metadatas})))
    for start in range(0, len(ids), batch):
        end = start + batch
        vectors = embed(texts[start:end])
        store.upsert(ids[start:end], np.asarray(vectors).tolist(), texts[start:end],
                     [{**m, EMBEDDED_BY: model} for m in metadatas[start:end]])
        if progress is not None:
            progress(min(end, len(ids)), len(ids))
    return len(ids)
