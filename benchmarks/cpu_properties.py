#!/usr/bin/env python3
"""Sweep the raw engine's OpenVINO properties on this CPU: which candidate is fastest per level.

The raw ContinuousBatchingPipeline (benchmarks/loadgen.py's RawEngineTarget: the server's
scheduler, distinct prompts, ``ignore_eos``) runs every candidate property set at each
concurrency level. Rounds are interleaved (each round loads every candidate in turn, starting
one further along each round), so machine noise hits all candidates alike. Each candidate's
greedy text on a few fixed prompts is checked for structure (not empty, not a degenerate loop);
whether it is identical to the default's is recorded, never used as a verdict (greedy text is
not batch- or kernel-invariant). A level's figures are trusted by benchmarks/honesty.py's
rules, the default candidate playing the raw engine's part (the same code every round).

Writes (merges) ``benchmarks/results/cpu_properties.json`` under this CPU's family
(ovserve.engine.cpu_properties: the family names the table's rows) and prints which candidate
wins per level. A row of ovserve's CPU table changes only with such a result. Run it alone on a
quiet machine:

    .venv/bin/python benchmarks/cpu_properties.py                  # every candidate, c=1 8 32
    .venv/bin/python benchmarks/cpu_properties.py --candidates default f32 --concurrency 1
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.honesty import Load, LoadProbe, spread, verdict, wait_until_quiet  # noqa: E402
from benchmarks.loadgen import (  # noqa: E402
    RawEngineTarget,
    add_model_argument,
    run_level,
)
from ovserve.engine.cpu_properties import TABLE, this_cpu  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "cpu_properties.json"


@dataclass(frozen=True)
class Candidate:
    """OpenVINO properties and scheduler fields (``EngineConfig``'s) to measure."""

    properties: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    about: str = ""


CANDIDATES: dict[str, Candidate] = {
    "default": Candidate(about="OpenVINO's defaults for this CPU (no properties)"),
    "f32": Candidate({"INFERENCE_PRECISION_HINT": "f32"},
                     about="f32 activations: int8 weights run the dynamic-quantization kernels"),
    "f32-dq0": Candidate({"INFERENCE_PRECISION_HINT": "f32",
                          "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0},
                         about="f32 without dynamic quantization"),
    "kv-f16": Candidate({"KV_CACHE_PRECISION": "f16"}, about="f16 KV cache (default u8)"),
    "threads-1": Candidate({"INFERENCE_NUM_THREADS": 1}, about="one inference thread"),
    "threads-all": Candidate({"INFERENCE_NUM_THREADS": os.cpu_count() or 1},
                             about="an inference thread per logical CPU"),
    "no-pinning": Candidate({"ENABLE_CPU_PINNING": False}, about="threads not pinned"),
    "batched-512": Candidate(scheduler={"max_num_batched_tokens": 512},
                             about="max_num_batched_tokens 512 (ovserve's default 2048)"),
    "batched-8192": Candidate(scheduler={"max_num_batched_tokens": 8192},
                              about="max_num_batched_tokens 8192 (ovserve's default 2048)"),
    # the second sweep's candidates (notes: the CPU plugin's dynamic-quantization FC path is
    # taken only with f32 activations, groups a multiple of 16 dividing every K: 576 and 1536
    # for the built-in model; Zen 4 has bf16 but no fp16 arithmetic)
    "f32-dq64": Candidate({"INFERENCE_PRECISION_HINT": "f32",
                           "DYNAMIC_QUANTIZATION_GROUP_SIZE": 64},
                          about="f32, dynamic quantization in groups of 64 (default 32)"),
    "f32-dq192": Candidate({"INFERENCE_PRECISION_HINT": "f32",
                            "DYNAMIC_QUANTIZATION_GROUP_SIZE": 192},
                           about="f32, dynamic quantization in groups of 192"),
    "kv-bf16": Candidate({"KEY_CACHE_PRECISION": "bf16", "VALUE_CACHE_PRECISION": "bf16"},
                         about="bf16 KV cache: no u8 quantizing of each new key and value"),
    "no-snippets": Candidate({"SNIPPETS_MODE": "DISABLE"},
                             about="eltwise chains not fused into JIT subgraphs"),
    "denormals": Candidate({"CPU_DENORMALS_OPTIMIZATION": True},
                           about="flush-to-zero / denormals-are-zero on inference threads"),
    "sampler-1": Candidate({"sampler_num_threads": 1},
                           about="openvino-genai's sampler on one thread"),
    "no-prefix-cache": Candidate(scheduler={"enable_prefix_caching": False},
                                 about="prefix caching off (ovserve's default on)"),
}

#: fixed prompts whose greedy text is checked (the chat template is applied)
COHERENCE_PROMPTS = ("What is the theory of relativity?",
                     "Write a short story about a lighthouse keeper.",
                     "Explain how a bicycle works to a child.")
#: below this fraction of distinct token ids (in 16 tokens or more) the text is a loop
MIN_DISTINCT = 0.2
#: a text ending in at least this many tokens that repeat with a period of at most
#: MAX_PERIOD is a loop
LOOP_TAIL, MAX_PERIOD = 48, 24
_request_ids = itertools.count(10**9)  # apart from RawEngineTarget's own (from 0)


def loop_period(ids: list[int]) -> int | None:
    """The period of a loop the tokens end in (their last LOOP_TAIL tokens repeat with it),
    else None."""
    if len(ids) < LOOP_TAIL:
        return None
    tail = ids[-LOOP_TAIL:]
    for period in range(1, MAX_PERIOD + 1):
        if all(tail[i] == tail[i - period] for i in range(period, len(tail))):
            return period
    return None


def structure(ids: list[int]) -> list[str]:
    """What makes a greedy text degenerate (empty list: it is not)."""
    if not ids:
        return ["no tokens"]
    problems = []
    distinct = len(set(ids)) / len(ids)
    if len(ids) >= 16 and distinct < MIN_DISTINCT:
        problems.append(f"only {distinct:.0%} distinct tokens")
    period = loop_period(ids)
    if period is not None:
        problems.append(f"ends in a loop of {period} token(s)")
    return problems


def greedy_ids(target: RawEngineTarget, prompt: str, max_tokens: int) -> list[int]:
    """One greedy request alone on the target's pipeline (its stepping thread closed)."""
    templated = target.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                     add_generation_prompt=True)
    config = target.ov_genai.GenerationConfig(max_new_tokens=max_tokens)
    config.eos_token_id = target.eos
    handle = target.pipeline.add_request(next(_request_ids), templated, config)
    ids: list[int] = []
    while True:
        target.pipeline.step()
        if handle.can_read():
            for output in handle.read().values():
                ids.extend(output.generated_ids)
        if handle.get_status().name != "RUNNING":
            return ids


def coherence(target: RawEngineTarget, max_tokens: int) -> list[dict[str, Any]]:
    texts = []
    for prompt in COHERENCE_PROMPTS:
        ids = greedy_ids(target, prompt, max_tokens)
        problems = structure(ids)
        texts.append({"prompt": prompt, "tokens": len(ids), "ok": not problems,
                      "problems": problems, "ids": ids,
                      "text": target.tokenizer.decode(ids)[:400]})
    return texts


def _merge_loads(loads: list[Load]) -> Load:
    """One level's load over its runs in every round: the first's load before, the last's
    after, steal weighted by time."""
    seconds = sum(load.seconds for load in loads)
    steal = sum(load.steal * load.seconds for load in loads) / seconds if seconds else 0.0
    return Load(load_before=loads[0].load_before, load_after=loads[-1].load_after, steal=steal,
                seconds=seconds)


async def sweep(args: argparse.Namespace, before_run: tuple[float, float, float]
                ) -> dict[str, Any]:
    names: list[str] = args.candidates
    tok_s: dict[str, dict[int, list[float]]] = {n: {c: [] for c in args.concurrency}
                                                for n in names}
    loads: dict[int, list[Load]] = {c: [] for c in args.concurrency}
    texts: dict[str, list[dict[str, Any]]] = {}
    used: dict[str, dict[str, Any]] = {}
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            candidate = CANDIDATES[name]
            started = time.perf_counter()
            target = RawEngineTarget(args.model, candidate.properties, candidate.scheduler)
            used[name] = target.properties
            load_seconds = time.perf_counter() - started
            for concurrency in args.concurrency:
                requests = max(args.min_requests, 2 * concurrency)
                probe = LoadProbe()
                result = await run_level(target, concurrency, requests, args.max_tokens)
                loads[concurrency].append(probe.finish())
                tok_s[name][concurrency].append(result.tokens_per_second)
                print(f"round {round_ + 1} {name:>13} c={concurrency:<3} "
                      f"{result.tokens_per_second:7.1f} tok/s  TTFT p50 "
                      f"{result.ttft['p50'] * 1e3:5.0f} ms  errors {result.errors}  "
                      f"(loaded in {load_seconds:.1f} s)", flush=True)
            await target.close()
            if name not in texts:
                texts[name] = coherence(target, args.max_tokens)
            del target
            gc.collect()
    return {"tok_s": tok_s, "loads": loads, "texts": texts, "used": used}


def winners(candidates: dict[str, dict[str, Any]], levels: list[int]) -> dict[str, Any]:
    """Per level: the coherent candidate with the highest median tok/s, its ratio to the
    default's, and whether the gap is clear of both candidates' round-to-round spread."""
    out: dict[str, Any] = {}
    for concurrency in levels:
        key = str(concurrency)
        coherent = {n: c for n, c in candidates.items() if c["coherent"]
                    and c["median_tok_s"].get(key)}
        if not coherent:
            out[key] = None
            continue
        best = max(coherent, key=lambda n: coherent[n]["median_tok_s"][key])
        mine = coherent[best]
        default = candidates.get("default")
        entry: dict[str, Any] = {"candidate": best, "tok_s": mine["median_tok_s"][key]}
        if default and default["median_tok_s"].get(key):
            ratio = mine["median_tok_s"][key] / default["median_tok_s"][key]
            noise = max(mine["spread"][key], default["spread"][key])
            # one round shows no spread: no gap is clear of it
            steady = min(len(mine["tok_s"][key]), len(default["tok_s"][key])) >= 2
            entry.update(vs_default=round(ratio, 3),
                         clear=steady and best != "default" and ratio - 1 > noise)
        out[key] = entry
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_argument(parser)
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES),
                        default=list(CANDIDATES),
                        help="candidate property sets (default: all; 'default' is the "
                        "reference for the trust verdict and the ratios)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=128,
                        help="tokens per request (ignore_eos) and of each coherence text")
    parser.add_argument("--min-requests", type=int, default=16,
                        help="requests per round, candidate and level, at least (and 2 x "
                        "concurrency; default 16)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds (each loads every candidate once; default 3, the least "
                        "that shows whether the default was steady)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="the JSON file this CPU family's entry is merged into (default "
                        "benchmarks/results/cpu_properties.json)")
    parser.add_argument("--quiet-wait", type=float, default=180,
                        help="wait up to this many seconds for the load average to settle "
                        "before starting (default 180)")
    args = parser.parse_args()
    args.candidates = list(dict.fromkeys(args.candidates))
    if args.rounds < 3:
        print("note: fewer than 3 rounds cannot show whether the default was steady",
              file=sys.stderr)
    if "default" not in args.candidates:
        print("note: without 'default' no level can be judged trustworthy and no ratio is "
              "shown", file=sys.stderr)

    import openvino
    import openvino_genai

    cpu = this_cpu()
    print(f"CPU {cpu.model}: family {cpu.describe()}; model {args.model}", flush=True)
    before_run = wait_until_quiet(args.quiet_wait)
    started = time.time()
    measured = asyncio.run(sweep(args, before_run))
    after_run = os.getloadavg()

    default_texts = measured["texts"].get("default")
    candidates: dict[str, dict[str, Any]] = {}
    for name in args.candidates:
        rounds = measured["tok_s"][name]
        texts = measured["texts"][name]
        for i, text in enumerate(texts):
            text["identical_to_default"] = (default_texts is not None
                                            and text["ids"] == default_texts[i]["ids"])
        candidates[name] = {
            **asdict(CANDIDATES[name]), "properties_used": measured["used"][name],
            "tok_s": {str(c): [round(v, 1) for v in values] for c, values in rounds.items()},
            "median_tok_s": {str(c): round(statistics.median(values), 1)
                             for c, values in rounds.items() if values},
            "spread": {str(c): round(spread(values), 3) for c, values in rounds.items()},
            "coherent": all(t["ok"] for t in texts),
            "texts": [{k: v for k, v in t.items() if k != "ids"} for t in texts]}
    default_rounds = measured["tok_s"].get("default", {})
    trust = [verdict(c, default_rounds.get(c, []), _merge_loads(measured["loads"][c]),
                     before_run) for c in args.concurrency]
    if "default" not in args.candidates:
        for level in trust:
            level["trustworthy"] = False
            level["problems"].append("no 'default' candidate to judge the rounds by")
    won = winners(candidates, args.concurrency)
    entry = {
        "cpu": cpu.model, "family": cpu.family, "own_family": cpu.own_family,
        "isa_cap": cpu.isa_cap, "isa_flags": cpu.isa_flags, "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "python": platform.python_version(), "openvino": openvino.__version__,
        "openvino_genai": openvino_genai.__version__, "model": args.model.resolve().name,
        "max_tokens": args.max_tokens, "rounds": args.rounds,
        "min_requests": args.min_requests, "concurrency": args.concurrency,
        "load": {"before_run": before_run, "after_run": after_run},
        "table_row": TABLE.get(cpu.family, {}), "candidates": candidates, "trust": trust,
        "winners": won}
    results: dict[str, Any] = {}
    if args.out.is_file():
        results = json.loads(args.out.read_text())
    results[cpu.family] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    print(f"\n{cpu.describe()}, {args.model.resolve().name}, {args.max_tokens} tokens, "
          f"{args.rounds} round(s); load {before_run[0]:.2f} before, {after_run[0]:.2f} after")
    print("candidate       " + "".join(f"   c={c:<5}" for c in args.concurrency) + "  text")
    for name, data in candidates.items():
        cells = "".join(f"{data['median_tok_s'].get(str(c), float('nan')):9.1f} "
                        for c in args.concurrency)
        same = sum(t["identical_to_default"] for t in data["texts"])
        state = "ok" if data["coherent"] else "DEGENERATE: " + "; ".join(
            p for t in data["texts"] for p in t["problems"])
        print(f"{name:<15} {cells}  {state} ({same}/{len(data['texts'])} as default's)")
    for level, concurrency in zip(trust, args.concurrency, strict=True):
        win = won.get(str(concurrency))
        judged = "trustworthy" if level["trustworthy"] else \
            "NOT trustworthy: " + "; ".join(level["problems"])
        if win is None:
            print(f"c={concurrency}: no coherent candidate ({judged})")
            continue
        ratio = f", {win['vs_default']:.2f}x default" if "vs_default" in win else ""
        clear = " (clear of the rounds' spread)" if win.get("clear") else ""
        print(f"c={concurrency}: {win['candidate']} wins at {win['tok_s']:.1f} tok/s"
              f"{ratio}{clear}; {judged}")
    print(f"wrote {args.out} under {cpu.family!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
