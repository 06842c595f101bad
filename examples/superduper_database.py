"""superduper on a real database, with ovserve as its model server: the seed's whole flow.

    make serve     # in another shell: ovserve on :8000 with --lora_dir adapters
    .venv-clients/bin/python examples/superduper_database.py \\
        --database sqlite:///tmp/ovserve-faq.db --lora_dir adapters

1. ``db = superduper("sqlite://...")`` (superduper-sql's ibis backend; ``postgresql://...``
   works the same way) and a table ``faq`` of questions with the support team's answers.
2. A Listener runs ovserve's chat model (superduper-openai's ``OpenAIChatCompletion`` on
   ``/v1/chat/completions``) over every question: rows already there when it is applied, and
   rows inserted afterwards, as they arrive.
3. A VectorIndex over ovserve's embeddings (``OpenAIEmbedding`` on ``/v1/embeddings``,
   all-minilm-l6-v2) and a similarity query returning the nearest rows, best first.
4. The seed's fine-tuning flow: a LoRA adapter trained from the rows a superduper query selects
   (``examples/superduper_lora.py``: a superduper Trainer running ovserve's
   ``scripts/finetune_lora.py`` on them), written into the server's adapter folder, and
   answering by its model id through the same ``OpenAIChatCompletion`` class.

The last line printed is a JSON report of what is in the database (see ``--help``).
superduper-openai 0.10 needs two things said explicitly: the server goes in ``client_kwargs``
(its ``openai_api_base`` argument puts the URL in the HTTP headers too), and the chat model's
output ``datatype="str"`` (the default is set in a hook 0.10 never calls, and the Listener's
output table is then never created).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from superduper import Listener, Table, VectorIndex, superduper
from superduper_lora import OvserveLoRATrainer
from superduper_openai.model import OpenAIChatCompletion, OpenAIEmbedding

REPO = Path(__file__).resolve().parent.parent
TABLE = "faq"

# The support team's questions and answers: the rows the flow starts from.
FAQ = [
    ("How do I start the server?", "Run make serve; it listens on port 8000."),
    ("Which API do chat clients use?", "The OpenAI API under /v1, e.g. /v1/chat/completions."),
    ("How do I list the served models?", "GET /v1/models lists every model and adapter."),
    ("Where do LoRA adapters go?", "In the --lora_dir folder, one sub-folder per adapter."),
    ("How do I get embeddings?", "POST /v1/embeddings with the model all-minilm-l6-v2."),
    ("Does the server speak KServe?", "Yes: KServe v2 over REST and gRPC."),
    ("How do I stream tokens?", "Set stream to true; tokens arrive as server-sent events."),
    ("Can I serve OVMS graphs?", "Yes: ovserve reads OVMS config.json and graph files."),
]
# questions that arrive after the listeners are applied
LATER = [
    ("What port does gRPC use?", "Port 9000 with make serve."),
    ("How do I stop a long answer?", "Set max_tokens; the answer ends at that length."),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_url", default="http://localhost:8000/v1",
                        help="ovserve's OpenAI API (default %(default)s)")
    parser.add_argument("--database", default=f"sqlite://{Path('ovserve-faq.db').absolute()}",
                        help="superduper data backend URI: sqlite:///ABSOLUTE/PATH (SQLAlchemy "
                        "refuses sqlite://./relative) or postgresql://USER:PASSWORD@HOST/DB "
                        "(default: ovserve-faq.db here, %(default)s)")
    parser.add_argument("--artifacts", type=Path, default=Path("superduper-artifacts"),
                        help="superduper's artifact store folder (default %(default)s)")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--embedding_model", default="all-minilm-l6-v2")
    parser.add_argument("--dimensions", type=int, default=384,
                        help="the embedding model's vector size (default %(default)s)")
    parser.add_argument("--max_tokens", type=int, default=48)
    parser.add_argument("--exact_tokens", action="store_true",
                        help="every answer exactly --max_tokens tokens long (ignore_eos and "
                        "min_tokens, as vLLM takes them)")
    parser.add_argument("--query", default="Where do I put a fine-tuned adapter?",
                        help="the similarity query's text")
    parser.add_argument("--top_k", type=int, default=3)
    parser.add_argument("--lora_dir", type=Path, required=True,
                        help="the server's adapter folder (its --lora_dir)")
    parser.add_argument("--adapter", default="faq-style", help="the adapter's model id")
    parser.add_argument("--steps", type=int, default=20, help="LoRA optimizer steps")
    parser.add_argument("--finetune", default=f"{REPO / '.venv/bin/python'} "
                        f"{REPO / 'scripts/finetune_lora.py'}",
                        help="the command that runs ovserve's LoRA trainer (default: "
                        "ovserve's venv and scripts/finetune_lora.py)")
    return parser


def connect(database: str, artifacts: Path) -> Any:
    """``db = superduper(uri)``, the artifacts in a folder of their own."""
    artifacts.mkdir(parents=True, exist_ok=True)
    return superduper(database, artifact_store=f"filesystem://{artifacts.resolve()}")


def insert_rows(db: Any, rows: Sequence[tuple[str, str]]) -> list[str]:
    """Insert (question, answer) rows into the table; every row in the training fold."""
    return list(db[TABLE].insert([{"question": q, "answer": a, "_fold": "train"}
                                  for q, a in rows]))


def chat_model(identifier: str, model: str, args: argparse.Namespace, **kwargs: Any
               ) -> OpenAIChatCompletion:
    """superduper-openai's chat model on ovserve."""
    predict: dict[str, Any] = {"max_tokens": args.max_tokens}
    if args.exact_tokens:
        predict["extra_body"] = {"min_tokens": args.max_tokens, "ignore_eos": True}
    return OpenAIChatCompletion(identifier=identifier, model=model, datatype="str",
                                client_kwargs=server(args), predict_kwargs=predict, **kwargs)


def server(args: argparse.Namespace) -> dict[str, str]:
    """The OpenAI client's arguments: ovserve's URL; no key is checked."""
    return {"base_url": args.base_url, "api_key": "unused"}


def answer_listener(db: Any, args: argparse.Namespace) -> Listener:
    """A Listener filling an answer output for every question, present and future."""
    listener = Listener(identifier="answer", key=(["question"], {}),
                        model=chat_model("ovserve-chat", args.model, args),
                        select=db[TABLE].select())
    db.apply(listener, force=True)
    return listener


def vector_index(db: Any, args: argparse.Namespace) -> VectorIndex:
    """The questions' embeddings (a Listener of their own) in a VectorIndex."""
    embed = OpenAIEmbedding(identifier="ovserve-embed", model=args.embedding_model,
                            datatype=f"vector[float32:{args.dimensions}]",
                            client_kwargs=server(args))
    index = VectorIndex(identifier="faq-index", indexing_listener=Listener(
        identifier="embedding", key="question", model=embed, select=db[TABLE].select()))
    db.apply(index, force=True)
    return index


def fine_tune(db: Any, args: argparse.Namespace) -> OpenAIChatCompletion:
    """The adapter's chat model, fitted by superduper from the table's rows on apply."""
    trainer = OvserveLoRATrainer(identifier="faq-lora-trainer", key=("question", "answer"),
                                 select=db[TABLE].select(), lora_dir=str(args.lora_dir),
                                 adapter=args.adapter, command=args.finetune.split(),
                                 steps=args.steps)
    tuned = chat_model("faq-lora", args.adapter, args, trainer=trainer)
    db.apply(tuned, force=True)
    return tuned


def rows_with_outputs(db: Any, predict_id: str) -> list[dict[str, Any]]:
    """Every row of the table joined with a listener's outputs."""
    return [dict(r) for r in db[TABLE].select().outputs(predict_id).execute()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db = connect(args.database, args.artifacts)
    db.apply(Table(TABLE, fields={"question": "str", "answer": "str", "_fold": "str"}),
             force=True)
    ids = insert_rows(db, FAQ)
    listener = answer_listener(db, args)
    index = vector_index(db, args)
    ids += insert_rows(db, LATER)  # the listeners fill these as they arrive

    answers = rows_with_outputs(db, listener.predict_id)
    for row in answers:
        print(f"Q: {row['question']}\nA: {row[listener.outputs]!r}")
    vectors = rows_with_outputs(db, index.indexing_listener.predict_id)
    nearest = [dict(r) for r in db[TABLE].like({"question": args.query},
                                                 vector_index=index.identifier,
                                                 n=args.top_k).select().execute()]
    print(f"nearest to {args.query!r}:", *(f"  {r['question']}" for r in nearest), sep="\n")

    tuned = fine_tune(db, args)
    tuned_answer = tuned.predict(FAQ[3][0])
    print(f"{args.adapter} answers {FAQ[3][0]!r}: {tuned_answer!r}")

    report = {
        "ids": ids,
        "answer_column": listener.outputs,
        "answers": {r["id"]: r[listener.outputs] for r in answers},
        "vector_column": index.indexing_listener.outputs,
        "vector_sizes": {r["id"]: len(r[index.indexing_listener.outputs]) for r in vectors},
        "query": args.query,
        "nearest": [{"id": r["id"], "question": r["question"], "score": r.get("score")}
                    for r in nearest],
        "adapter": args.adapter,
        "adapter_answer": tuned_answer,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
