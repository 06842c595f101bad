"""Retrieval quality on the default corpus: recall@k of 20 question -> README section pairs
(benchmarks/data/retrieval_questions.jsonl), with the built-in embedding model and Chroma, as
the RAG graph retrieves.

    .venv/bin/python benchmarks/retrieval_eval.py [--k 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--questions", type=Path,
                        default=REPO / "benchmarks/data/retrieval_questions.jsonl")
    args = parser.parse_args()
    from ovserve.engine.embeddings import EmbeddingConfig, EmbeddingEngine
    from ovserve.rag.ingest import IngestReport, ingest_document
    from ovserve.rag.store import StoreConfig, VectorStore

    pairs = [json.loads(line) for line in args.questions.read_text().splitlines() if line]
    engine = EmbeddingEngine(EmbeddingConfig(REPO / "models/all-minilm-l6-v2", truncate=True))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = VectorStore(StoreConfig(path=Path(tmp)))
            ingest_document(store, lambda texts: engine.embed(texts).vectors, "README.md",
                            (REPO / "README.md").read_bytes(), IngestReport())
            found = 0
            for pair in pairs:
                hits = store.query(engine.embed([pair["question"]]).vectors[0].tolist(), args.k)
                sections = [h.section for h in hits]
                hit = pair["section"] in sections
                found += hit
                print(f"{'hit ' if hit else 'MISS'} {pair['question']}  ->  {sections}")
    finally:
        engine.close()
    print(f"recall@{args.k}: {found}/{len(pairs)} = {found / len(pairs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
