"""Retrieval quality on the default corpus: recall@k of question -> README section pairs
(benchmarks/data/retrieval_questions.jsonl, written before the reranker was trained and never
used to train it), with the built-in embedding model and Chroma, as the RAG graph retrieves;
with ``--rerank``, also after the RAG graph's rerank stage (the ``--candidates`` closest chunks
scored by the rerank model, the best k kept), and what reranking costs per question.

    .venv/bin/python benchmarks/retrieval_eval.py [--k 1 2 4] [--rerank models/minilm-l6-reranker]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4],
                        help="recall@k for each (the lines show the largest)")
    parser.add_argument("--questions", type=Path,
                        default=REPO / "benchmarks/data/retrieval_questions.jsonl")
    parser.add_argument("--rerank", type=Path, default=None,
                        help="a rerank model folder (scripts/make_reranker.py) to compare with")
    parser.add_argument("--candidates", type=int, default=20,
                        help="chunks the reranker scores (the retriever's rerank_candidates)")
    args = parser.parse_args()
    from ovserve.engine.embeddings import EmbeddingConfig, EmbeddingEngine
    from ovserve.engine.rerank import RerankConfig, RerankEngine
    from ovserve.rag.ingest import IngestReport, ingest_document
    from ovserve.rag.store import StoreConfig, VectorStore

    pairs = [json.loads(line) for line in args.questions.read_text().splitlines() if line]
    engine = EmbeddingEngine(EmbeddingConfig(REPO / "models/all-minilm-l6-v2", truncate=True))
    reranker = RerankEngine(RerankConfig(args.rerank)) if args.rerank else None
    k = max(args.k)
    found = dict.fromkeys(args.k, 0)
    reranked_found = dict.fromkeys(args.k, 0)
    retrieve_s = rerank_s = 0.0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = VectorStore(StoreConfig(path=Path(tmp)))
            ingest_document(store, lambda texts: engine.embed(texts).vectors, "README.md",
                            (REPO / "README.md").read_bytes(), IngestReport())
            for pair in pairs:
                started = time.perf_counter()
                vector = engine.embed([pair["question"]]).vectors[0].tolist()
                hits = store.query(vector, max(k, args.candidates if reranker else 0))
                retrieve_s += time.perf_counter() - started
                sections = [h.section for h in hits[:k]]
                hit = pair["section"] in sections
                for m in args.k:
                    found[m] += pair["section"] in sections[:m]
                line = f"{'hit ' if hit else 'MISS'} {pair['question']}  ->  {sections}"
                if reranker is not None:
                    started = time.perf_counter()
                    scores = reranker.rerank(pair["question"], [h.text for h in hits]).scores
                    rerank_s += time.perf_counter() - started
                    order = sorted(range(len(hits)), key=lambda i: -scores[i])[:k]
                    after = [hits[i].section for i in order]
                    rehit = pair["section"] in after
                    for m in args.k:
                        reranked_found[m] += pair["section"] in after[:m]
                    line += f"\n     reranked: {'hit ' if rehit else 'MISS'} {after}"
                print(line)
    finally:
        engine.close()
        if reranker is not None:
            reranker.close()
    n = len(pairs)
    recalls = ", ".join(f"recall@{m} {found[m]}/{n} = {found[m] / n:.2f}" for m in args.k)
    print(f"retrieval: {recalls} ({1000 * retrieve_s / n:.1f} ms a question)")
    if reranker is not None:
        recalls = ", ".join(f"recall@{m} {reranked_found[m]}/{n} = {reranked_found[m] / n:.2f}"
                            for m in args.k)
        print(f"reranking the top {args.candidates}: {recalls} "
              f"(+{1000 * rerank_s / n:.1f} ms a question)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
