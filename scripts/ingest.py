#!/usr/bin/env python3
"""Ingest a folder of .md, .txt and .pdf files into the vector store the RAG graph reads.

    python scripts/ingest.py [--docs README.md docs/] [--store data/chroma | --chroma_url URL]

Chunks with overlap, embeds them with the embedding model (--embedding_model, default the one
the RAG graph's retriever embeds questions with: --graph, graphs/rag) and upserts them with
content-hash ids: re-running embeds only what changed and drops chunks of changed files that
are gone. Each chunk records which model embedded it (NAME@DIGEST of the model's weights); when
the model changed (e.g. a fine-tuned one from scripts/finetune_embeddings.py), every chunk in
the store is embedded again first.
Unreadable files are reported and skipped. Do not point it at the embedded store a
running server uses (use the server's upload endpoint then, or a Chroma server).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, nargs="+", default=[REPO / "README.md",
                                                                  REPO / "docs"],
                        help="files and folders to ingest (default: the project's docs)")
    parser.add_argument("--store", type=Path, default=REPO / "data/chroma",
                        help="embedded Chroma directory (default: data/chroma)")
    parser.add_argument("--chroma_url", default="", help="a Chroma server instead, http://h:p")
    parser.add_argument("--collection", default="documents")
    parser.add_argument("--graph", type=Path, default=REPO / "graphs/rag/graph.pbtxt",
                        help="the RAG graph that queries the store: its retriever's "
                        "embedding_models_path is the default --embedding_model")
    parser.add_argument("--embedding_model", type=Path, default=None,
                        help="embed with this model folder (default: the one --graph's "
                        "retriever names, else models/all-minilm-l6-v2)")
    args = parser.parse_args()
    from ovserve.toolchain.tool import LOG_FORMAT

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)

    from ovserve.cli import env_plugin_config
    from ovserve.nodes.retriever import embedding_model_of

    if args.embedding_model is None:
        named = embedding_model_of(args.graph) if args.graph.is_file() else None
        args.embedding_model = named or REPO / "models/all-minilm-l6-v2"

    from ovserve.engine.embeddings import EmbeddingConfig, EmbeddingEngine
    from ovserve.errors import OvserveError
    from ovserve.rag.ingest import IngestReport, documents_in, ingest_document, reembed
    from ovserve.rag.model_id import embedding_model_info
    from ovserve.rag.store import StoreConfig, VectorStore

    try:
        files: list[tuple[Path, Path]] = []  # (root, file)
        for item in args.docs:
            if item.is_dir():
                files += [(item, f) for f in documents_in(item)]
            elif item.is_file():
                files.append((item.parent, item))
            else:
                print(f"ingest.py: {item} does not exist (skipped)", file=sys.stderr)
        store = VectorStore(StoreConfig(path=None if args.chroma_url else args.store,
                                        url=args.chroma_url, collection=args.collection))
        # the CPU properties a server on this machine lays over its engines
        # ($OVSERVE_PLUGIN_CONFIG, as --plugin_config)
        engine = EmbeddingEngine(EmbeddingConfig(
            args.embedding_model, truncate=True,
            plugin_config=env_plugin_config().get("CPU", {})))
    except OvserveError as exc:
        print(f"ingest.py: {exc}", file=sys.stderr)
        return 1
    model = embedding_model_info(args.embedding_model)
    logging.getLogger("ingest").info("embedding model %s (%s) from %s", model.id,
                                     model.source or "?", args.embedding_model)
    report = IngestReport()

    def embed(texts: list[str]) -> Any:
        return engine.embed(texts).vectors

    try:
        with tqdm(desc="re-embed", unit="chunk", total=0, disable=None) as bar:
            def advance(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            report.reembedded = reembed(store, embed, model.id, progress=advance)
        for root, path in tqdm(files, desc="ingest", unit="file"):
            name = path.relative_to(root).as_posix()
            try:
                ingest_document(store, embed, name, path.read_bytes(), report, model=model.id)
            except OvserveError as exc:
                if type(exc).__name__ == "VectorStoreError":
                    raise
                report.skipped[name] = str(exc)
    except OvserveError as exc:
        print(f"ingest.py: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    print(json.dumps({**report.as_dict(), "chunks_in_store": store.count(),
                      "embedding_model": model.id}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
