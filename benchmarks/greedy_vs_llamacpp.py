#!/usr/bin/env python3
"""Greedy tokens of OpenVINO model folders against llama.cpp's on the same GGUF (not a speed
benchmark: it checks which IR computes the GGUF's model).

llama.cpp's own server (xllamacpp, .venv-xllamacpp) answers each chat prompt greedily with its
top-5 log-probabilities per step; every folder then generates from the very same token ids with
openvino-genai. Per prompt the report gives the first step where the tokens differ (the token
count when none does) and, there, llama.cpp's log-probabilities of its token and of
OpenVINO's: a gap of a few hundredths is a near-tie any arithmetic may flip, a gap of a whole
nat is a different model. A folder may carry properties: ``DIR@f32`` sets
INFERENCE_PRECISION_HINT. EOS ends a generation on both sides (llama.cpp's ignore_eos masks EOS,
openvino-genai's does not, so it is not used).

    .venv/bin/python benchmarks/greedy_vs_llamacpp.py models/smollm2-135m-instruct-gguf \\
        models/smollm2-135m-instruct-gguf@f32 models/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.servers import start_xllamacpp  # noqa: E402

PROMPTS = (
    "Name the planets of the solar system.", "How do I make a cup of tea?",
    "Translate 'good morning' into Spanish.", "What causes rain?",
    "What is the capital of France?", "Explain the theory of relativity in simple terms.",
    "Write a Python function that reverses a string.", "Give me three tips for staying healthy.",
    "Who wrote Romeo and Juliet?", "What is 12 times 7?",
)


@dataclass
class Reference:
    """llama.cpp's greedy tokens for one prompt and its top log-probabilities per step."""

    tokens: list[int]
    top: list[dict[int, float]]


@dataclass
class Agreement:
    """Where one folder's greedy tokens first left llama.cpp's on one prompt."""

    prompt: str
    first_difference: int  # == the token count when none differs
    tokens: int
    identical: bool  # the same tokens, up to EOS or the token limit
    llamacpp_token: int | None = None
    openvino_token: int | None = None
    llamacpp_logprob: float | None = None
    openvino_logprob: float | None = None  # under llama.cpp; None when not in its top 5


def prompt_ids(folder: Path, prompts: tuple[str, ...]) -> list[list[int]]:
    """Each prompt as the user turn of the model's chat template, tokenized by the folder's
    tokenizer (ids equal to the GGUF's own tokenizer's for the built-in model)."""
    import openvino_genai as ov_genai

    tokenizer = ov_genai.Tokenizer(str(folder))
    ids = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             add_generation_prompt=True)
        encoded = tokenizer.encode(text, add_special_tokens=False).input_ids.data[0]
        ids.append([int(i) for i in encoded])
    return ids


def llamacpp(python: Path, gguf: Path, ids: list[list[int]], tokens: int,
             log: Path) -> list[Reference]:
    import httpx

    server = start_xllamacpp(python, gguf, log, threads=os.cpu_count() or 2, parallel=1)
    references = []
    try:
        for prompt in ids:
            body: dict[str, Any] = httpx.post(server.rest_url + "/completion", timeout=300, json={
                "prompt": prompt, "n_predict": tokens, "temperature": 0, "top_k": 1,
                "return_tokens": True, "n_probs": 5, "cache_prompt": False}).json()
            top = [{int(t["id"]): float(t["logprob"]) for t in step.get("top_logprobs", [])}
                   for step in body.get("completion_probabilities", [])]
            references.append(Reference([int(t) for t in body["tokens"]], top))
    finally:
        server.stop()
    return references


def compare(spec: str, ids: list[list[int]], references: list[Reference],
            tokens: int) -> list[Agreement]:
    import numpy as np
    import openvino as ov
    import openvino_genai as ov_genai

    folder, _, hint = spec.partition("@")
    properties = {"INFERENCE_PRECISION_HINT": hint} if hint else {}
    pipe = ov_genai.LLMPipeline(folder, "CPU", **properties)
    config = ov_genai.GenerationConfig(max_new_tokens=tokens, do_sample=False)
    rows = []
    for prompt, prompt_tokens, reference in zip(PROMPTS, ids, references, strict=True):
        inputs = ov_genai.TokenizedInputs(ov.Tensor(np.array([prompt_tokens], np.int64)),
                                          ov.Tensor(np.ones((1, len(prompt_tokens)), np.int64)))
        ours = [int(t) for t in pipe.generate(inputs, config).tokens[0]]
        theirs = reference.tokens
        common = min(len(ours), len(theirs))
        first = next((k for k in range(common) if ours[k] != theirs[k]), common)
        row = Agreement(prompt, first, len(theirs), ours == theirs)
        if ours != theirs and first < common and first < len(reference.top):
            top = reference.top[first]
            row.llamacpp_token, row.openvino_token = theirs[first], ours[first]
            row.llamacpp_logprob = top.get(theirs[first])
            row.openvino_logprob = top.get(ours[first])
        rows.append(row)
    return rows


def table(results: dict[str, list[Agreement]]) -> str:
    lines = ["| folder | first difference per prompt (N= identical, N tokens) | mean | "
             "llama.cpp's log-prob gap there |", "|---|---|---|---|"]
    for spec, rows in results.items():
        gaps = [f"{r.llamacpp_logprob - r.openvino_logprob:.3f}"
                if r.llamacpp_logprob is not None and r.openvino_logprob is not None
                else ">top5" for r in rows if r.llamacpp_token is not None]
        firsts = [r.first_difference for r in rows]
        cells = [f"{r.first_difference}{'=' if r.identical else ''}" for r in rows]
        lines.append(f"| {spec} | {' '.join(cells)} | "
                     f"{sum(firsts) / len(firsts):.1f} | {', '.join(gaps) or '-'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="OpenVINO model folders, DIR or DIR@f32")
    parser.add_argument("--gguf", type=Path, default=None,
                        help="the GGUF llama.cpp runs (default: the built-in model's)")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--xllamacpp-python", type=Path,
                        default=REPO / ".venv-xllamacpp" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    if args.gguf is None:
        from ovserve.toolchain.catalog import BUILTIN_MODELS, DEFAULT_MODEL
        from ovserve.toolchain.gguf_source import fetch_gguf

        args.gguf = fetch_gguf(BUILTIN_MODELS[DEFAULT_MODEL])
    ids = prompt_ids(Path(args.folders[0].partition("@")[0]), PROMPTS)
    log = REPO / "benchmarks" / "results" / "raw" / "greedy_vs_llamacpp.log"
    references = llamacpp(args.xllamacpp_python, args.gguf, ids, args.tokens, log)
    results = {spec: compare(spec, ids, references, args.tokens) for spec in args.folders}
    print(f"llama.cpp (xllamacpp) on {args.gguf.name}, {args.tokens} greedy tokens, "
          f"{len(PROMPTS)} chat prompts\n")
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps({"gguf": args.gguf.name, "tokens": args.tokens, "rows": {
            spec: [asdict(r) for r in rows] for spec, rows in results.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
