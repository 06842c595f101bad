#!/usr/bin/env python3
"""Ingest a folder of .md, .txt and .pdf files into the vector store the RAG graph reads.

    python scripts/ingest.py [--docs README.md docs/] [--store data/chroma | --chroma_url URL]

Chunks with overlap, embeds them with the built-in embedding model and upserts them with
content-hash ids: re-running embeds only what changed and drops chunks of changed files that
are gone. Unreadable files are reported and skipped. Do not point it at the embedded store a
running server uses (use the server's upload endpoint then, or a Chroma server).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

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
    parser.add_argument("--embedding_model", type=Path, default=REPO / "models/all-minilm-l6-v2")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from ovserve.engine.embeddings import EmbeddingConfig, EmbeddingEngine
    from ovserve.errors import OvserveError
    from ovserve.rag.ingest import IngestReport, documents_in, ingest_document
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
        engine = EmbeddingEngine(EmbeddingConfig(args.embedding_model, truncate=True))
    except OvserveError as exc:
        print(f"ingest.py: {exc}", file=sys.stderr)
        return 1
    report = IngestReport()
    try:
        for root, path in tqdm(files, desc="ingest", unit="file"):
            name = path.relative_to(root).as_posix()
            try:
                ingest_document(store, lambda texts: engine.embed(texts).vectors, name,
                                path.read_bytes(), report)
            except OvserveError as exc:
                if type(exc).__name__ == "VectorStoreError":
                    raise
                report.skipped[name] = str(exc)
    except OvserveError as exc:
        print(f"ingest.py: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    print(json.dumps({**report.as_dict(), "chunks_in_store": store.count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
