"""Retrieval quality on the default corpus: recall@k of question -> README section pairs
(benchmarks/data/retrieval_questions.jsonl, written before the reranker and the embedding
fine-tune were trained; ``--split heldout``, the default, takes only the questions never used in
training), with an embedding model and Chroma, as the RAG graph retrieves. Several
``--embedding_model`` folders are compared side by side (the stock model and a fine-tuned one
from scripts/finetune_embeddings.py); with ``--rerank``, each also after the RAG graph's rerank
stage (the ``--candidates`` closest chunks scored by the rerank model, the best k kept), and
what reranking costs per question.

    .venv/bin/python benchmarks/retrieval_eval.py [--k 1 2 4] [--split heldout|train|all]
        [--embedding_model models/all-minilm-l6-v2 models/all-minilm-l6-v2-docs]
        [--rerank models/minilm-l6-reranker]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def evaluate(model: Path, pairs: list[dict[str, str]], ks: list[int], reranker: Any,
             candidates: int) -> dict[str, Any]:
    """Recall@k for each k of one embedding model (and after reranking, with ``reranker``)."""
    from ovserve.engine.embeddings import EmbeddingConfig, EmbeddingEngine
    from ovserve.rag.ingest import IngestReport, ingest_document
    from ovserve.rag.store import StoreConfig, VectorStore

    engine = EmbeddingEngine(EmbeddingConfig(model, truncate=True))
    k = max(ks)
    found = dict.fromkeys(ks, 0)
    reranked_found = dict.fromkeys(ks, 0)
    retrieve_s = rerank_s = 0.0
    print(f"== {model}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = VectorStore(StoreConfig(path=Path(tmp)))
            ingest_document(store, lambda texts: engine.embed(texts).vectors, "README.md",
                            (REPO / "README.md").read_bytes(), IngestReport())
            for pair in pairs:
                started = time.perf_counter()
                vector = engine.embed([pair["question"]]).vectors[0].tolist()
                hits = store.query(vector, max(k, candidates if reranker else 0))
                retrieve_s += time.perf_counter() - started
                sections = [h.section for h in hits[:k]]
                for m in ks:
                    found[m] += pair["section"] in sections[:m]
                line = (f"{'hit ' if pair['section'] in sections else 'MISS'} "
                        f"{pair['question']}  ->  {sections}")
                if reranker is not None:
                    started = time.perf_counter()
                    scores = reranker.rerank(pair["question"], [h.text for h in hits]).scores
                    rerank_s += time.perf_counter() - started
                    order = sorted(range(len(hits)), key=lambda i: -scores[i])[:k]
                    after = [hits[i].section for i in order]
                    for m in ks:
                        reranked_found[m] += pair["section"] in after[:m]
                    line += (f"\n     reranked: {'hit ' if pair['section'] in after else 'MISS'}"
                             f" {after}")
                print(line)
    finally:
        engine.close()
    n = len(pairs)
    result: dict[str, Any] = {
        "model": str(model), "questions": n,
        "recall": {m: round(found[m] / n, 3) for m in ks},
        "ms_a_question": round(1000 * retrieve_s / n, 1)}
    if reranker is not None:
        result["reranked_recall"] = {m: round(reranked_found[m] / n, 3) for m in ks}
        result["rerank_ms_a_question"] = round(1000 * rerank_s / n, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4],
                        help="recall@k for each (the lines show the largest)")
    parser.add_argument("--questions", type=Path,
                        default=REPO / "benchmarks/data/retrieval_questions.jsonl")
    parser.add_argument("--split", choices=("heldout", "train", "all"), default="heldout",
                        help="which questions (default: those never used in training)")
    parser.add_argument("--embedding_model", type=Path, nargs="+",
                        default=[REPO / "models/all-minilm-l6-v2"],
                        help="embedding model folders to compare (default: the stock one)")
    parser.add_argument("--rerank", type=Path, default=None,
                        help="a rerank model folder (scripts/make_reranker.py) to compare with")
    parser.add_argument("--candidates", type=int, default=20,
                        help="chunks the reranker scores (the retriever's rerank_candidates)")
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the results as JSON (with the CPU, the load average "
                        "and each model's training.json)")
    args = parser.parse_args()
    from ovserve.engine.rerank import RerankConfig, RerankEngine

    load_before = os.getloadavg()
    rows = [json.loads(line) for line in args.questions.read_text().splitlines() if line]
    pairs = [r for r in rows if args.split == "all" or r.get("split", "heldout") == args.split]
    reranker = RerankEngine(RerankConfig(args.rerank)) if args.rerank else None
    try:
        results = [evaluate(model, pairs, args.k, reranker, args.candidates)
                   for model in args.embedding_model]
    finally:
        if reranker is not None:
            reranker.close()
    n = len(pairs)
    print(f"\n{n} questions ({args.split})")
    for result in results:
        recalls = ", ".join(f"recall@{m} {result['recall'][m]:.2f}" for m in args.k)
        print(f"{result['model']}: {recalls} ({result['ms_a_question']} ms a question)")
        if reranker is not None:
            recalls = ", ".join(f"recall@{m} {result['reranked_recall'][m]:.2f}"
                                for m in args.k)
            print(f"  then reranking the top {args.candidates}: {recalls} "
                  f"(+{result['rerank_ms_a_question']} ms a question)")
    summary = {"split": args.split, "questions": n, "results": results}
    print(json.dumps(summary))
    if args.output is not None:
        from benchmarks.deterministic import cpu_model

        for result in results:
            training = Path(result["model"]) / "training.json"
            if training.is_file():
                result["training"] = json.loads(training.read_text())
        args.output.write_text(json.dumps(
            {**summary, "date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(),
             "cores": os.cpu_count(), "load_average_before": load_before,
             "load_average_after": os.getloadavg()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
