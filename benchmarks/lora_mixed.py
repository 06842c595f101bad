"""Mixed LoRA traffic: base + 4 adapters, uniformly mixed, against base-only traffic on a
server without adapters, at the same concurrency, in one run (rounds alternate so machine drift
hits both alike).

    .venv/bin/python benchmarks/lora_mixed.py [--concurrency 8 16] [--rounds 2]

Adapters are PEFT folders (r=8 on q_proj/v_proj, the shape scripts/finetune_lora.py trains)
with random weights: speed does not depend on what they learned. Lengths are forced
(ignore_eos). Reports total output tokens/s, the ratio to base-only, and each model id's p99
TTFT (no adapter may starve: within 2x of the others).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.loadgen import (  # noqa: E402
    OpenAIChatTarget,
    RequestResult,
    merge,
    percentiles,
    run_level,
)
from benchmarks.servers import start_ovserve  # noqa: E402

MODEL = "smollm2-135m-instruct"
ADAPTERS = ("lora-a", "lora-b", "lora-c", "lora-d")


class MixedTarget:
    """Each request picks base or one of the adapters uniformly; results kept per model id."""

    def __init__(self, name: str, base_url: str, models: list[str], seed: int = 0) -> None:
        self.name = name
        self.targets = {m: OpenAIChatTarget(name, base_url, m, {"ignore_eos": True})
                        for m in models}
        self.rng = random.Random(seed)
        self.by_model: dict[str, list[RequestResult]] = {m: [] for m in models}

    async def request(self, prompt: str, max_tokens: int) -> RequestResult:
        model = self.rng.choice(list(self.targets))
        result = await self.targets[model].request(prompt, max_tokens)
        if max_tokens > 16:  # not the warm-up
            self.by_model[model].append(result)
        return result

    async def close(self) -> None:
        for target in self.targets.values():
            await target.close()


def write_adapters(root: Path) -> None:
    from tests.engine.lora_files import write_adapter

    for seed, name in enumerate(ADAPTERS):
        write_adapter(root / name, seed=seed)


async def measure(url_plain: str, url_lora: str, args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"levels": []}
    for concurrency in args.concurrency:
        plain = MixedTarget("base-only (no adapters)", f"{url_plain}/v1", [MODEL])
        base_on_lora = MixedTarget("base-only, LoRA server", f"{url_lora}/v1", [MODEL])
        mixed = MixedTarget("base + 4 adapters mixed", f"{url_lora}/v1", [MODEL, *ADAPTERS])
        rounds: dict[str, list[Any]] = {}
        requests = max(args.min_requests, 3 * concurrency)
        for round_ in range(args.rounds):
            for target in (plain, mixed, base_on_lora):
                result = await run_level(target, concurrency, requests, args.max_tokens)
                rounds.setdefault(target.name, []).append(result)
                print(f"{target.name:>26} c={concurrency:<3} round {round_ + 1} "
                      f"{result.tokens_per_second:6.0f} tok/s  errors {result.errors}",
                      flush=True)
        merged = {name: merge(results) for name, results in rounds.items()}
        baseline = merged[plain.name].tokens_per_second
        ttft = {m: percentiles([r.ttft for r in rs if r.error is None])
                for m, rs in mixed.by_model.items()}
        ttft_p99 = {m: p["p99"] for m, p in ttft.items()}
        report["levels"].append({
            "concurrency": concurrency,
            "tokens_per_second": {n: m.tokens_per_second for n, m in merged.items()},
            "rounds_tokens_per_second": {n: [r.tokens_per_second for r in rs]
                                         for n, rs in rounds.items()},
            "errors": {n: m.errors for n, m in merged.items()},
            "mixed_over_base_only": merged[mixed.name].tokens_per_second / baseline,
            "ttft_p50_by_model": {m: p["p50"] for m, p in ttft.items()},
            "ttft_p99_by_model": ttft_p99,
            "ttft_p99_max_over_min": max(ttft_p99.values()) / min(ttft_p99.values()),
        })
        for target in (plain, mixed, base_on_lora):
            await target.close()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max_tokens", type=int, default=128)
    parser.add_argument("--min_requests", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/lora_mixed.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_adapters(root / "loras")
        env = {"OVSERVE_MAX_TOKENS": str(args.max_tokens)}
        config = REPO / "servables/config.json"
        plain = start_ovserve("plain", config, root / "plain.log", env)
        lora = start_ovserve("lora", config, root / "lora.log", env,
                             "--lora_dir", str(root / "loras"))
        try:
            started = time.monotonic()
            report = asyncio.run(measure(plain.rest_url, lora.rest_url, args))
        finally:
            plain.stop()
            lora.stop()
    report.update({"load_average_before": load_before, "load_average_after": os.getloadavg(),
                   "seconds": round(time.monotonic() - started), "max_tokens": args.max_tokens,
                   "adapters": "4 x PEFT r=8 q_proj/v_proj"})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nload average before {load_before}, after {report['load_average_after']}")
    print("| concurrency | base-only, no adapters (tok/s) | mixed base + 4 adapters (tok/s) "
          "| ratio | base-only on the LoRA server | p99 TTFT max/min across models |")
    print("|---|---|---|---|---|---|")
    for level in report["levels"]:
        tps = level["tokens_per_second"]
        print(f"| {level['concurrency']} | {tps['base-only (no adapters)']:.0f} | "
              f"{tps['base + 4 adapters mixed']:.0f} | {level['mixed_over_base_only']:.2f} | "
              f"{tps['base-only, LoRA server']:.0f} | {level['ttft_p99_max_over_min']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
