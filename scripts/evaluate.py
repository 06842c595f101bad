#!/usr/bin/env python3
"""Accuracy of models on a labelled JSONL test set, through the OpenAI API (as NIM's PubMedQA
notebook evaluates a base model against its LoRA adapters).

    python scripts/evaluate.py --data data/parity/test.jsonl \\
        --models smollm2-135m-instruct parity [--base_url http://localhost:8000/v1]

Each row is ``{"prompt", "completion"}``. A prediction is right when its first word equals the
completion's first word (case and punctuation ignored); greedy decoding, a few tokens.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def first_word(text: str) -> str:
    words = text.strip().split()
    return words[0].strip(string.punctuation).lower() if words else ""


def evaluate(client: object, model: str, rows: list[dict[str, str]], max_tokens: int,
             concurrency: int) -> dict[str, object]:
    def ask(row: dict[str, str]) -> bool:
        response = client.completions.create(  # type: ignore[attr-defined]
            model=model, prompt=row["prompt"], max_tokens=max_tokens, temperature=0)
        return first_word(response.choices[0].text) == first_word(row["completion"])

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        right = sum(pool.map(ask, rows))
    return {"model": model, "accuracy": right / len(rows), "correct": right, "n": len(rows),
            "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="test JSONL")
    parser.add_argument("--models", nargs="+", required=True,
                        help="model ids: the base model and adapters")
    parser.add_argument("--base_url", default="http://localhost:8000/v1")
    parser.add_argument("--max_tokens", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from openai import OpenAI, OpenAIError

    from ovserve.toolchain.tasks import read_jsonl

    try:
        rows = read_jsonl(args.data)
    except (OSError, ValueError) as exc:
        print(f"evaluate.py: {exc}", file=sys.stderr)
        return 1
    client = OpenAI(base_url=args.base_url, api_key="unused")
    results = []
    print(f"{'model':<28} {'accuracy':>8} {'correct':>8} {'seconds':>8}")
    for model in args.models:
        try:
            result = evaluate(client, model, rows, args.max_tokens, args.concurrency)
        except OpenAIError as exc:
            print(f"evaluate.py: {model}: {exc}", file=sys.stderr)
            return 1
        results.append(result)
        print(f"{model:<28} {result['accuracy']:>8.1%} {result['correct']:>4}/{len(rows):<3} "
              f"{result['seconds']:>8}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
