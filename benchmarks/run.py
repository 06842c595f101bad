#!/usr/bin/env python3
"""Benchmark ovserve against the raw engine underneath it, side by side, in one run.

Systems (same model, same two cores, one session):
  (a) raw openvino-genai ContinuousBatchingPipeline in this process (the ceiling)
  (b) ovserve, OpenAI chat completions over SSE
  (c) ovserve, KServe gRPC ModelStreamInfer on servables/servable_stream
  (d) llama-cpp-python's OpenAI server on the same model's GGUF, 2 threads
  (e) the seed's approach: optimum-intel generate per request in a Python node
      (benchmarks/seed_approach), served by ovserve over gRPC ModelStreamInfer
At every concurrency level each system runs in turn, (a)-(c) for several rounds interleaved,
so machine noise hits all of them alike; (d) and (e) run one round (they are slow).
Writes benchmarks/results/serving.{md,json} and PNG plots; see README for the command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.cpu import ROLES  # noqa: E402
from benchmarks.honesty import (  # noqa: E402
    LoadProbe,
    trust_section,
    verdict,
    wait_until_quiet,
)
from benchmarks.loadgen import (  # noqa: E402
    GrpcStreamTarget,
    LevelResult,
    OpenAIChatTarget,
    RawEngineTarget,
    Target,
    merge,
    run_level,
    summary_table,
)
from benchmarks.servers import (  # noqa: E402
    Process,
    start_llamacpp,
    start_ovserve,
    start_xllamacpp,
)

MODEL_ID = "smollm2-135m-instruct"
RAW, SSE, GRPC = "raw openvino-genai", "ovserve OpenAI SSE", "ovserve gRPC stream"
SSE_PL = "ovserve OpenAI SSE, prompt lookup"
LLAMA, SEED = "llama-cpp-python server", "seed approach (optimum-intel per request)"
XLLAMA = "llama.cpp server (xllamacpp, 8 slots)"
SYSTEMS = {"raw": RAW, "sse": SSE, "sse-pl": SSE_PL, "grpc": GRPC, "xllamacpp": XLLAMA,
           "llamacpp": LLAMA, "seed": SEED}


@dataclass
class System:
    target: Target
    rounds: int
    server: Process | None = None  # its CPU is recorded (None: the engine runs in here)


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
    def tps(system: str, concurrency: int) -> float | None:
        found = next((r for r in levels if r.system == system and r.concurrency == concurrency),
                     None)
        return found.tokens_per_second if found else None

    def ttft(system: str) -> float | None:
        found = next((r for r in levels if r.system == system and r.concurrency == 1), None)
        return found.ttft["p50"] if found else None

    checks: list[dict[str, Any]] = []

    def check(target: str, value: float | None, met: bool | None, note: str = "") -> None:
        checks.append({"target": target, "value": None if value is None else round(value, 3),
                       "met": met, **({"note": note} if note else {})})

    for system in (SSE, GRPC, SSE_PL):
        if tps(system, 1) is None and tps(system, 8) is None:
            continue  # not in this run
        raw8, at8, raw1, at1 = tps(RAW, 8), tps(system, 8), ttft(RAW), ttft(system)
        ratio = at8 / raw8 if raw8 and at8 else None
        check(f"{system}: throughput at concurrency 8 >= 0.95 x raw", ratio,
              None if ratio is None else ratio >= 0.95)
        delta = (at1 - raw1) * 1e3 if raw1 is not None and at1 is not None else None
        check(f"{system}: TTFT p50 at concurrency 1 within 15 ms of raw (ms above raw)", delta,
              None if delta is None else delta <= 15)
        x1, x8, at1_tps = tps(XLLAMA, 1), tps(XLLAMA, 8), tps(system, 1)
        note = "" if x1 or x8 else "xllamacpp not in this run"
        ratio = at1_tps / x1 if at1_tps and x1 else None
        check(f"{system}: throughput at concurrency 1 >= llama.cpp's server (xllamacpp)", ratio,
              None if ratio is None else ratio >= 1.0, note)
        ratio = at8 / x8 if at8 and x8 else None
        check(f"{system}: throughput at concurrency 8 >= 3 x llama.cpp's server (xllamacpp)",
              ratio, None if ratio is None else ratio >= 3.0, note)
        llama8 = tps(LLAMA, 8)
        ratio = at8 / llama8 if at8 and llama8 else None
        check(f"{system}: throughput at concurrency 8 >= 5 x llama-cpp-python server", ratio,
              None if ratio is None else ratio >= 5,
              "" if llama8 else "llama-cpp-python not in this run")
        seed8 = tps(SEED, 8)
        if at8 and seed8:
            check(f"{system}: throughput at concurrency 8 vs the seed's approach (no target)",
                  at8 / seed8, None)
    return checks


def ratio_table(levels: list[LevelResult]) -> str:
    """Output tokens/s of every system as a fraction of the raw engine's, per level."""
    systems = [s for s in SYSTEMS.values() if any(r.system == s for r in levels)]
    concurrency = sorted({r.concurrency for r in levels})
    rows = ["| system | " + " | ".join(f"c={c}" for c in concurrency) + " |",
            "|---|" + "---|" * len(concurrency)]
    for system in systems:
        cells = []
        for c in concurrency:
            raw = next((r for r in levels if r.system == RAW and r.concurrency == c), None)
            row = next((r for r in levels if r.system == system and r.concurrency == c), None)
            cells.append(f"{row.tokens_per_second / raw.tokens_per_second:.2f}"
                         if row and raw else "-")
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


CPU_NOTE = ("CPU milliseconds per output token, user + system, all threads: the serving "
            "process, its engine process (ovserve) and the load generator, which for the raw "
            "engine is the engine itself. All of them share the same cores, so a server's and a "
            "client's CPU per token is taken from the engine's time.")


def cpu_table(levels: list[LevelResult]) -> str:
    rows = ["| system | conc. | server | engine | client | total |", "|---|---|---|---|---|---|"]
    for r in levels:
        cpu = r.cpu_ms_per_token
        if not cpu:
            continue
        cells = [f"{cpu[role]:.2f}" if role in cpu else "-" for role in ROLES]
        rows.append(f"| {r.system} | {r.concurrency} | " + " | ".join(cells)
                    + f" | {sum(cpu.values()):.2f} |")
    return "\n".join(rows)


def plot(levels: list[LevelResult], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted({r.system for r in levels})
    files = []
    metrics: list[tuple[Callable[[LevelResult], float], str, str, str]] = [
        (lambda r: r.tokens_per_second, "output tokens/s", "throughput.png", "linear"),
        (lambda r: r.ttft["p50"] * 1e3, "TTFT p50 (ms, log scale)", "ttft_p50.png", "log"),
        (lambda r: r.tpot["p50"] * 1e3, "TPOT p50 (ms, log scale)", "tpot_p50.png", "log"),
    ]
    for key, label, name, yscale in metrics:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.set_yscale(yscale)
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


async def measure(args: argparse.Namespace, systems: list[System],
                  before_run: tuple[float, float, float]
                  ) -> tuple[list[LevelResult], list[dict[str, Any]]]:
    """Every level of every system, and each level's trust verdict (load, steal, raw spread)."""
    levels = []
    verdicts = []
    for concurrency in args.concurrency:
        probe = LoadProbe()
        rounds: dict[str, list[LevelResult]] = {}
        for round_ in range(max(s.rounds for s in systems)):
            for system in systems:
                if round_ >= system.rounds:
                    continue
                requests = max(args.min_requests, 2 * concurrency)
                pid = system.server.process.pid if system.server else None
                result = await run_level(system.target, concurrency, requests, args.max_tokens,
                                         server_pid=pid)
                print(f"{system.target.name:>42} c={concurrency:<3} round {round_ + 1} "
                      f"{result.tokens_per_second:6.0f} tok/s  TTFT p50 "
                      f"{result.ttft['p50'] * 1e3:5.0f} ms  errors {result.errors}", flush=True)
                rounds.setdefault(system.target.name, []).append(result)
        levels += [merge(results) for results in rounds.values()]
        raw_rounds = [r.tokens_per_second for r in rounds.get(RAW, [])]
        verdicts.append(verdict(concurrency, raw_rounds, probe.finish(), before_run))
        flagged = verdicts[-1]
        print(f"c={concurrency}: " + ("trustworthy" if flagged["trustworthy"] else
                                      "NOT trustworthy: " + "; ".join(flagged["problems"])),
              flush=True)
    for system in systems:
        close = getattr(system.target, "close", None)
        if close is not None:
            await close()
    return levels, verdicts


def default_gguf(model: Path) -> Path:
    """The GGUF llama.cpp runs beside ``model``: for a folder make_shaped_model.py wrote, the
    GGUF it wrote with it; otherwise the built-in model's."""
    from ovserve.toolchain import provenance
    from ovserve.toolchain.catalog import BUILTIN_MODELS
    from ovserve.toolchain.gguf_source import fetch_gguf

    source = str(provenance.read(model).get("source", ""))
    if source.startswith("shaped:"):
        made = sorted(model.parent.glob(source.removeprefix("shaped:") + ".*.gguf"))
        if not made:
            raise SystemExit(f"{model} was made by make_shaped_model.py, but no GGUF of it is "
                             f"next to it; pass --gguf")
        return made[0]
    return fetch_gguf(BUILTIN_MODELS[MODEL_ID])


def server_config(model: Path, logs: Path) -> Path:
    """servables/config.json on the built-in model; for another model a config in ``logs`` with
    the same LLM graph (graphs/llm, its models_path pointed at ``model``) served under the
    same name, and the gRPC stream servable (which reads OVSERVE_MODEL_PATH)."""
    if model.resolve() == (REPO / "models" / MODEL_ID).resolve():
        return REPO / "servables/config.json"
    graph = (REPO / "graphs/llm/graph.pbtxt").read_text()
    pointed = graph.replace('"../../models/smollm2-135m-instruct"', json.dumps(str(model)))
    if pointed == graph:
        raise SystemExit("graphs/llm/graph.pbtxt no longer names the built-in model's folder")
    (logs / "llm").mkdir(parents=True, exist_ok=True)
    (logs / "llm" / "graph.pbtxt").write_text(pointed)
    config = logs / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "python_model", "base_path": str(REPO / "servables/servable_stream")},
        {"name": MODEL_ID, "base_path": str(logs / "llm")}]}, indent=2))
    return config


def start_systems(args: argparse.Namespace, logs: Path) -> tuple[list[System], list[Process],
                                                                  list[str]]:
    systems: list[System] = []
    processes: list[Process] = []
    notes: list[str] = []
    config = server_config(args.model, logs)
    if config != REPO / "servables/config.json":
        notes.append(f"model {args.model} served under the name {MODEL_ID} by {config}")
    # every system generates exactly max_tokens (ignore_eos), so tokens/s compare like for like
    env = {"OVSERVE_MAX_TOKENS": str(args.max_tokens), "OVSERVE_MODEL_PATH": str(args.model),
           "OVSERVE_IGNORE_EOS": "1"}
    wanted = set(args.systems)
    if "raw" in wanted:
        systems.append(System(RawEngineTarget(args.model), args.rounds))
    if wanted & {"sse", "grpc"}:
        server = start_ovserve("ovserve", config, logs / "ovserve.log", env)
        processes.append(server)
        if "sse" in wanted:
            systems.append(System(OpenAIChatTarget(SSE, f"{server.rest_url}/v1", MODEL_ID,
                                                   extra={"ignore_eos": True}),
                                  args.rounds, server))
        if "grpc" in wanted:
            systems.append(System(GrpcStreamTarget(GRPC, server.grpc_url), args.rounds, server))
    if "sse-pl" in wanted:  # the same server with prompt lookup decoding on every CPU engine
        server = start_ovserve("ovserve-pl", config, logs / "ovserve-pl.log", env,
                               "--plugin_config", json.dumps({"CPU": {"prompt_lookup": True}}))
        processes.append(server)
        systems.append(System(OpenAIChatTarget(SSE_PL, f"{server.rest_url}/v1", MODEL_ID,
                                               extra={"ignore_eos": True}),
                              args.rounds, server))
        notes.append("prompt lookup: ovserve with --plugin_config "
                     "'{\"CPU\": {\"prompt_lookup\": true}}' and the default "
                     "num_assistant_tokens 1, max_ngram_size 3")
    if "xllamacpp" in wanted:
        if args.xllamacpp_python.is_file():
            gguf = args.gguf or default_gguf(args.model)
            server = start_xllamacpp(args.xllamacpp_python, gguf, logs / "xllamacpp.log",
                                     threads=os.cpu_count() or 2)
            processes.append(server)
            # llama.cpp's server takes ignore_eos too: every system generates max_tokens
            systems.append(System(OpenAIChatTarget(XLLAMA, f"{server.rest_url}/v1", MODEL_ID,
                                                   extra={"ignore_eos": True}, keepalive=False),
                                  args.rounds, server))
            notes.append(f"llama.cpp's own server (xllamacpp) on {gguf.name}, 8 parallel "
                         f"slots, continuous batching, {os.cpu_count()} threads; a new "
                         "connection per request (its HTTP server drops idle keep-alive "
                         "connections, which the client would otherwise reuse and fail on)")
        else:
            notes.append(f"xllamacpp not measured: {args.xllamacpp_python} does not exist "
                         "(`make bench` builds it)")
    if "llamacpp" in wanted:
        if args.llamacpp_python.is_file():
            gguf = args.gguf or default_gguf(args.model)
            server = start_llamacpp(args.llamacpp_python, gguf, logs / "llamacpp.log",
                                    threads=os.cpu_count() or 2)
            processes.append(server)
            systems.append(System(OpenAIChatTarget(LLAMA, f"{server.rest_url}/v1", MODEL_ID),
                                  1, server))
            notes.append(f"llama-cpp-python server on {gguf.name} (the GGUF the model is "
                         f"built from), {os.cpu_count()} threads, one request at a time "
                         "(--interrupt_requests False: by default a new request cuts off the "
                         "one being streamed)")
        else:
            notes.append(f"llama-cpp-python not measured: {args.llamacpp_python} does not "
                         "exist (`make bench` builds it)")
    if "seed" in wanted:
        server = start_ovserve("seed approach", REPO / "benchmarks/seed_approach/config.json",
                               logs / "seed_approach.log", env)
        processes.append(server)
        systems.append(System(GrpcStreamTarget(SEED, server.grpc_url), 1, server))
    return systems, processes, notes


def weights(model: Path) -> str:
    """The model folder's weight format, as its ovserve_model.json records it."""
    from ovserve.toolchain import provenance

    return str(provenance.read(model).get("weight_format", "?"))


def write_report(report: dict[str, Any], levels: list[LevelResult], out: Path) -> str:
    """serving.json, serving.md and the plots; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    plots = plot(levels, out)
    lines = [f"# ovserve side by side ({report['date']}, {report['minutes']:.0f} min)", "",
             f"Model {report['model']} ({report.get('weights', 'int8')} OpenVINO IR; llama.cpp: "
             f"{report.get('gguf') or 'the Q4_1 GGUF it is built from'}), "
             f"{report['max_tokens']} output tokens per request, distinct prompts, "
             f"greedy, closed loop, at least {report['min_requests']} and 2 x concurrency "
             f"requests per round; raw engine and ovserve: {report['rounds']} rounds per level, "
             "interleaved, pooled (xllamacpp too); llama-cpp-python and the seed's approach: one "
             "round.", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()), "",
             *[f"- {note}" for note in report["notes"]], "",
             *trust_section(report.get("trust", [])),
             "## Throughput relative to the raw engine", "", ratio_table(levels), "",
             "## All measurements", "", summary_table(levels), "",
             "## Where the CPU goes", "", CPU_NOTE, "", cpu_table(levels), "",
             "## Targets", ""]
    for check in report["targets"]:
        state = {True: "met", False: "NOT met", None: "-"}[check["met"]]
        lines.append(f"- {check['target']}: {check['value']} ({state})"
                     + (f" - {check['note']}" if check.get("note") else ""))
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    markdown = "\n".join(lines)
    (out / "serving.md").write_text(markdown)
    return markdown


def report_from_json(out: Path) -> tuple[dict[str, Any], list[LevelResult]]:
    """An earlier run's report, to re-render it (``--report-only``)."""
    report = json.loads((out / "serving.json").read_text())
    names = {f.name for f in dataclasses.fields(LevelResult)} - {"results"}
    levels = [LevelResult(**{k: v for k, v in row.items() if k in names})
              for row in report["levels"]]
    return report, levels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / MODEL_ID,
                        help="the OpenVINO model folder (default: the built-in model's), e.g. "
                        "models/tinyllama-1.1b-shaped-int8 from scripts/make_shaped_model.py")
    parser.add_argument("--gguf", type=Path, default=None,
                        help="the GGUF the llama.cpp systems run (default: the one "
                        "make_shaped_model.py wrote beside --model, else the built-in model's)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--min-requests", type=int, default=32,
                        help="requests per round and level, at least (default 32)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the raw engine and ovserve per level (default 3, the "
                        "least that shows whether the raw engine was steady)")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--llamacpp-python", type=Path,
                        default=REPO / ".venv-llamacpp" / "bin" / "python")
    parser.add_argument("--xllamacpp-python", type=Path,
                        default=REPO / ".venv-xllamacpp" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--quiet-wait", type=float, default=180,
                        help="wait up to this many seconds for the load average to settle "
                        "before starting (default 180)")
    parser.add_argument("--report-only", action="store_true",
                        help="re-render serving.md and the plots from serving.json")
    args = parser.parse_args()
    if args.rounds < 3 and "raw" in args.systems:
        print("note: fewer than 3 rounds cannot show whether the raw engine was steady",
              file=sys.stderr)

    if args.report_only:
        report, levels = report_from_json(args.out)
        print(write_report(report, levels, args.out))
        return 0
    # the machine before the benchmark loads it (starting the servers is heavy work)
    before_run = wait_until_quiet(args.quiet_wait)
    started = time.time()
    systems, processes, notes = start_systems(args, args.out / "raw")
    try:
        levels, trust = asyncio.run(measure(args, systems, before_run))
    finally:
        for process in processes:
            process.stop()
    report = {"date": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
              "minutes": round((time.time() - started) / 60, 1), "machine": machine(),
              "model": args.model.resolve().name, "weights": weights(args.model),
              "gguf": (args.gguf or default_gguf(args.model)).name
              if {"xllamacpp", "llamacpp"} & set(args.systems) else None,
              "max_tokens": args.max_tokens, "rounds": args.rounds,
              "min_requests": args.min_requests, "notes": notes, "trust": trust,
              "levels": [r.as_dict() for r in levels], "targets": targets_check(levels)}
    print(write_report(report, levels, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
