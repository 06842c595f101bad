"""What deterministic mode costs (issue 25): the raw engine with ovserve's default settings and
with deterministic mode's (engine.determinism), side by side in one run, rounds alternating.

    .venv/bin/python benchmarks/deterministic.py [--rounds 3] [--tokens 128]

Each round: one stream, then 8 prompts at once (``generate``), 128 tokens forced, distinct
prompts (no prefix cache hits). Writes benchmarks/results/deterministic.json with the CPU model,
the load before and after, every round, medians and deterministic / default ratios; each level
is judged by honesty.verdict (the default's rounds within 10%, a quiet machine before the run,
no CPU steal) and marked trustworthy or not, with the reasons.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.honesty import LoadProbe, spread, verdict, wait_until_quiet
from ovserve.engine.base import EngineConfig
from ovserve.engine.cpu_properties import this_cpu
from ovserve.engine.process import scheduler_config

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "smollm2-135m-instruct"
OUT = REPO / "benchmarks" / "results" / "deterministic.json"


def cpu_model() -> str:
    return this_cpu().model


def pipeline(deterministic: bool) -> Any:
    import openvino_genai as ov_genai

    config = EngineConfig(models_path=MODEL, deterministic=deterministic)
    return ov_genai.ContinuousBatchingPipeline(str(MODEL), scheduler_config(config), "CPU", {})


def tokens_per_second(pipe: Any, streams: int, tokens: int) -> float:
    import openvino_genai as ov_genai

    config = ov_genai.GenerationConfig()
    config.max_new_tokens, config.ignore_eos, config.do_sample = tokens, True, False
    prompts = [f"[{uuid.uuid4().hex[:8]}] Tell me about the history of the {topic}."
               for topic in ("moon", "sea", "bees", "roads", "trains", "clocks", "maps",
                             "bread")[:streams]]
    started = time.perf_counter()
    results = pipe.generate(prompts, [config] * streams)
    seconds = time.perf_counter() - started
    generated = tokens * len(results)  # ignore_eos: every prompt gets all of them
    return generated / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--quiet-wait", type=float, default=120.0)
    args = parser.parse_args()
    load_before = wait_until_quiet(args.quiet_wait)
    probe = LoadProbe()
    pipes = {"default": pipeline(False), "deterministic": pipeline(True)}
    for pipe in pipes.values():  # warm up: first inferences compile kernels
        tokens_per_second(pipe, 1, 8)
    rounds: dict[str, dict[int, list[float]]] = {m: {1: [], 8: []} for m in pipes}
    for n in range(args.rounds):
        for mode in (("default", "deterministic") if n % 2 == 0 else
                     ("deterministic", "default")):
            for streams in (1, 8):
                rate = tokens_per_second(pipes[mode], streams, args.tokens)
                rounds[mode][streams].append(rate)
                print(f"round {n + 1} {mode:13s} {streams} stream(s): {rate:7.1f} tok/s",
                      flush=True)
    load = probe.finish()
    levels: dict[str, dict[str, Any]] = {}
    for streams in (1, 8):
        default = statistics.median(rounds["default"][streams])
        fixed = statistics.median(rounds["deterministic"][streams])
        trust = verdict(streams, rounds["default"][streams], load, load_before)
        levels[str(streams)] = {
            "default_tok_s": round(default, 1), "deterministic_tok_s": round(fixed, 1),
            "ratio": round(fixed / default, 3),
            "default_spread": round(spread(rounds["default"][streams]), 3),
            "trustworthy": trust["trustworthy"], "problems": trust["problems"],
            "rounds": {m: [round(r, 1) for r in rounds[m][streams]] for m in rounds}}
    report = {"cpu": cpu_model(), "model": "SmolLM2-135M-Instruct int8",
              "tokens": args.tokens, "load_before": load_before,
              "load_after": load.load_after, "steal": round(load.steal, 4), "levels": levels}
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    for level_name, level in levels.items():
        print(f"{level_name} stream(s): default {level['default_tok_s']} tok/s, deterministic "
              f"{level['deterministic_tok_s']} tok/s, ratio {level['ratio']}"
              + ("" if level["trustworthy"]
                 else f" (not trustworthy: {'; '.join(level['problems'])})"))
    print(f"written to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
