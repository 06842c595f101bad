#!/usr/bin/env python3
"""Benchmark ovserve against the raw engine underneath it, side by side, in one run.

Systems (same model, same two cores, one session):
  (a) raw openvino-genai ContinuousBatchingPipeline in this process (the ceiling)
  (b) ovserve, OpenAI chat completions over SSE
  (c) ovserve, KServe gRPC ModelStreamInfer on servables/servable_stream
Concurrency levels run in turn for every system, so machine noise hits all of them alike.
Writes benchmarks/results/serving.{md,json} and PNG plots; see README for the command.
Not yet here: llama-cpp-python's server and the seed's optimum-intel approach.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.loadgen import (  # noqa: E402
    GrpcStreamTarget,
    LevelResult,
    OpenAIChatTarget,
    RawEngineTarget,
    Target,
    run_level,
    summary_table,
)
from tests.transport.server import start_server  # noqa: E402

MODEL_ID = "smollm2-135m-instruct"


def machine() -> dict[str, Any]:
    import openvino
    import openvino_genai

    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    memory = 0
    with contextlib.suppress(OSError, StopIteration):
        memory = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text()
                          .splitlines() if line.startswith("MemTotal"))) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": memory,
            "python": platform.python_version(), "openvino": openvino.__version__,
            "openvino_genai": openvino_genai.__version__}


def targets_check(levels: list[LevelResult]) -> list[dict[str, Any]]:
    def level(system: str, concurrency: int) -> LevelResult | None:
        return next((r for r in levels if r.system == system and r.concurrency == concurrency),
                    None)

    checks = []
    raw8, raw1 = level("raw openvino-genai", 8), level("raw openvino-genai", 1)
    for system in ("ovserve OpenAI SSE", "ovserve gRPC stream"):
        at8, at1 = level(system, 8), level(system, 1)
        if raw8 and at8:
            ratio = at8.tokens_per_second / raw8.tokens_per_second
            checks.append({"target": f"{system}: throughput at concurrency 8 >= 0.95 x raw",
                           "value": round(ratio, 3), "met": ratio >= 0.95})
        if raw1 and at1:
            delta_ms = (at1.ttft["p50"] - raw1.ttft["p50"]) * 1e3
            checks.append({"target": f"{system}: TTFT p50 at concurrency 1 within 15 ms of raw",
                           "value": round(delta_ms, 1), "met": delta_ms <= 15})
    checks.append({"target": "ovserve at concurrency 8 >= 5 x llama-cpp-python server",
                   "value": None, "met": None, "note": "llama.cpp not in this run yet"})
    return checks


def plot(levels: list[LevelResult], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted({r.system for r in levels})
    files = []
    metrics: list[tuple[Callable[[LevelResult], float], str, str]] = [
        (lambda r: r.tokens_per_second, "output tokens/s", "throughput.png"),
        (lambda r: r.ttft["p50"] * 1e3, "TTFT p50 (ms)", "ttft_p50.png"),
        (lambda r: r.tpot["p50"] * 1e3, "TPOT p50 (ms)", "tpot_p50.png"),
    ]
    for key, label, name in metrics:
        fig, ax = plt.subplots(figsize=(6, 4))
        for system in systems:
            rows = sorted((r for r in levels if r.system == system), key=lambda r: r.concurrency)
            ax.plot([r.concurrency for r in rows], [key(r) for r in rows], marker="o",
                    label=system)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(name)
    return files


async def measure(args: argparse.Namespace, grpc_url: str, rest_url: str) -> list[LevelResult]:
    systems: list[Target] = [
        RawEngineTarget(args.model),
        OpenAIChatTarget("ovserve OpenAI SSE", f"{rest_url}/v1", MODEL_ID),
        GrpcStreamTarget("ovserve gRPC stream", grpc_url),
    ]
    levels = []
    for concurrency in args.concurrency:
        for target in systems:
            requests = max(args.min_requests, 2 * concurrency)
            result = await run_level(target, concurrency, requests, args.max_tokens)
            print(f"{target.name:>22} c={concurrency:<3} {result.tokens_per_second:6.0f} tok/s  "
                  f"TTFT p50 {result.ttft['p50'] * 1e3:5.0f} ms  errors {result.errors}",
                  flush=True)
            levels.append(result)
    return levels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / MODEL_ID)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--min-requests", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    server = start_server(REPO / "servables/config.json",
                          env={"OVSERVE_MAX_TOKENS": str(args.max_tokens),
                               "OVSERVE_MODEL_PATH": str(args.model)})
    started = time.time()
    try:
        levels = asyncio.run(measure(args, server.grpc_url, server.rest_url))
    finally:
        server.terminate()
    args.out.mkdir(parents=True, exist_ok=True)
    checks = targets_check(levels)
    report = {"date": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
              "machine": machine(), "model": MODEL_ID, "max_tokens": args.max_tokens,
              "levels": [r.as_dict() for r in levels], "targets": checks}
    (args.out / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    plots = plot(levels, args.out)
    lines = [f"# ovserve vs the raw engine ({report['date']})", "",
             f"Model {MODEL_ID} (int8), {args.max_tokens} output tokens per request, distinct "
             "prompts, greedy. Machine: " + ", ".join(f"{k} {v}" for k, v in
                                                     report["machine"].items()), "",
             summary_table(levels), "", "## Targets", ""]
    for check in checks:
        state = {True: "met", False: "NOT met", None: "not measured"}[check["met"]]
        lines.append(f"- {check['target']}: {check['value']} ({state})"
                     + (f" - {check['note']}" if check.get("note") else ""))
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    (args.out / "serving.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
